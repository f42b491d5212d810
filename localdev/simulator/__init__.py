"""Local tenant simulator: Entra ID, Key Vault, managed identity and the Defender for Cloud Apps API."""
