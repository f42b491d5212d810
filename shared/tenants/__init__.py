"""Tenants the app works for: the flat settings' default tenant plus the `mcasTenants` registry."""
