"""The anonymous ping: status and version only (no settings, no secrets), callable with nothing configured."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import azure.functions as func

from functions.diagnostics import ping
from shared.version import APP_VERSION

ROOT = Path(__file__).resolve().parents[2]


def test_ping_reports_status_and_version_only(monkeypatch):
    for name in ("MCAS_API_URL", "MCAS_KEY_VAULT_URL", "AzureWebJobsStorage"):
        monkeypatch.delenv(name, raising=False)
    request = func.HttpRequest(method="GET", url="/api/ping", body=b"")
    response = ping(request)  # the decorated name is a callable FunctionBuilder
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_body()) == {"status": "ok", "version": APP_VERSION}


def test_version_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == APP_VERSION
