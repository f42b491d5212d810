"""The app's version, as a constant: pyproject.toml is not deployed (.funcignore), so package metadata is
not available in Azure. tests/platform/test_diagnostics.py keeps it equal to pyproject's version."""

APP_VERSION = "0.1.0"
