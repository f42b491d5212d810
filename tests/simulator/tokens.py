"""Tokens from the simulated Entra ID, requested over HTTPS as the app requests them."""

from __future__ import annotations

import requests

from localdev.simulator.client import SimulatorHandle

MDA_SCOPE = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"


def app_token(
    sim: SimulatorHandle, app: str = "daemon", secret: str = "mcas-client-secret", *, scope: str = MDA_SCOPE
) -> str:
    """A real client-credentials token for `app` (its secret read from the simulated Key Vault)."""
    response = requests.post(
        sim.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id(app),
            "client_secret": sim.secret_value(secret),
            "scope": scope,
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])
