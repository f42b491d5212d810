"""Simulator core: token verification, fault injection, counters, admin API and process lifecycle."""

from __future__ import annotations

import json
import signal
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.simulator.client import SimulatorError, start_simulator
from localdev.simulator.counters import Counters
from localdev.simulator.faults import FaultInjector, FaultSpecError
from localdev.simulator.tokens import TokenIssuer
from localdev.simulator.wire import InvalidToken, SimRequest

MDA = "05a65629-4c1b-48c1-a78b-804c4abdd4af"
TID = "11111111-1111-1111-1111-111111111111"


# -- token verification ----------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def issuer_and_clock():
    clock = Clock()
    return TokenIssuer("https://127.0.0.1:1", lifetime_s=600, clock=clock), clock


def issue(issuer: TokenIssuer, client_id: str = "client-a", audience: str = MDA) -> str:
    token, _ = issuer.issue(
        tenant_id=TID, audience=audience, client_id=client_id, subject="s", object_id="o", roles=["R"]
    )
    return token


def test_verify_accepts_a_valid_token(issuer_and_clock):
    issuer, _ = issuer_and_clock
    claims = issuer.verify(issue(issuer), audience=MDA)
    assert claims["roles"] == ["R"] and claims["iss"] == f"https://127.0.0.1:1/{TID}/v2.0"
    assert issuer.verify(
        issue(issuer, audience="https://vault.azure.net"), audience="https://vault.azure.net/"
    )


def test_verify_rejects_wrong_audience_expiry_signature_and_revocation(issuer_and_clock):
    issuer, clock = issuer_and_clock
    with pytest.raises(InvalidToken, match="wrong audience"):
        issuer.verify(issue(issuer), audience="https://vault.azure.net")

    old = issue(issuer)
    clock.now += 601
    try:
        with pytest.raises(InvalidToken, match="expired"):
            issuer.verify(old, audience=MDA)
    finally:
        clock.now -= 601

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {**jwt.decode(issue(issuer), options={"verify_signature": False})},
        stranger,
        algorithm="RS256",
        headers={"kid": issuer.kid},
    )
    with pytest.raises(InvalidToken, match="bad signature"):
        issuer.verify(forged, audience=MDA)
    with pytest.raises(InvalidToken, match="malformed"):
        issuer.verify("not-a-jwt", audience=MDA)

    mine, theirs = issue(issuer, "client-a"), issue(issuer, "client-b")
    assert issuer.revoke("client-a") >= 1
    with pytest.raises(InvalidToken, match="revoked"):
        issuer.verify(mine, audience=MDA)
    assert issuer.verify(theirs, audience=MDA)
    assert issuer.verify(issue(issuer, "client-a"), audience=MDA)  # tokens issued afterwards are fine


def test_revoked_tokens_are_refused_by_the_mda_api(simulator):
    token = simulator.mint_token(app="daemon", audience=MDA, roles=["Investigation.read"])
    url = f"{simulator.api_url('contoso')}/api/v1/alerts/"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert simulator.revoke_tokens("daemon")["revoked"] >= 1
    assert requests.get(url, headers=headers, timeout=10).status_code == 401


# -- fault injection -------------------------------------------------------------------------------------


def req(path: str = "/x") -> SimRequest:
    return SimRequest("GET", path, {}, {})


def test_fault_rates_are_deterministic_and_rules_expire():
    slept: list[float] = []
    faults = FaultInjector(sleep=slept.append)
    faults.add({"service": "entra", "error_rate": 0.5, "status": 502})
    outcomes = [faults.before("entra", req()) for _ in range(4)]
    assert [o.status if o else 200 for o in outcomes] == [200, 502, 200, 502]
    assert faults.before("keyvault", req()) is None
    faults.clear()
    faults.add({"service": "all", "reset_rate": 1.0, "count": 2, "latency_ms": 20, "path_prefix": "/a"})
    assert faults.before("msi", req("/b")) is None
    first, second, third = (faults.before("msi", req("/a/1")) for _ in range(3))
    assert first is not None and first.abort and second is not None and second.abort and third is None
    assert slept == [0.02, 0.02]
    assert faults.rules() == []  # retired after `count` firings


@pytest.mark.parametrize(
    "spec",
    [{"service": "nope"}, {"error_rate": 2}, {"status": 42}, {"bogus": 1}, {"latency_ms": -1}],
)
def test_invalid_fault_specs_are_refused(spec, simulator):
    with pytest.raises(FaultSpecError):
        FaultInjector().add(spec)
    with pytest.raises(SimulatorError, match="400"):
        simulator.add_fault(**spec)


def discovery(simulator) -> requests.Response:
    return requests.get(f"{simulator.authority}/v2.0/.well-known/openid-configuration", timeout=10)


def test_5xx_share_over_https(simulator):
    simulator.add_fault(service="entra", error_rate=0.5)
    statuses = [discovery(simulator).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]
    counters = simulator.counters()
    assert counters["faults"]["entra:error"] >= 2
    assert counters["requests"]["entra"]["discovery"] == 4
    simulator.clear_faults()
    assert all(discovery(simulator).status_code == 200 for _ in range(2))


def test_latency(simulator):
    simulator.add_fault(service="keyvault", latency_ms=250)
    started = time.perf_counter()
    response = requests.get(f"{simulator.key_vault_url}/secrets/x?api-version=7.5", timeout=10)
    assert response.status_code == 401
    assert time.perf_counter() - started >= 0.25  # a lower bound: a busy machine only adds to it
    discovery(simulator)
    # Only the chosen service is slowed down: the simulator counts each injected delay per service (a
    # count, not a stopwatch, so a loaded machine cannot make this flaky).
    assert simulator.counters()["faults"] == {"keyvault:latency": 1}


def test_connection_reset_then_recovery(simulator):
    simulator.add_fault(service="msi", reset_rate=1.0, count=1)
    url = simulator.info["msi_endpoint"]
    params = {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}
    headers = {"X-IDENTITY-HEADER": simulator.info["msi_header"]}
    with pytest.raises(requests.ConnectionError):
        requests.get(url, params=params, headers=headers, timeout=10)
    assert requests.get(url, params=params, headers=headers, timeout=10).status_code == 200


def test_connection_reset_over_tls(simulator):
    simulator.add_fault(service="entra", reset_rate=1.0, count=1, path_prefix=f"/{simulator.tenant_id}/v2.0")
    with pytest.raises(requests.ConnectionError):
        discovery(simulator)
    assert discovery(simulator).status_code == 200


def test_429_storm_with_retry_after(simulator):
    simulator.add_fault(service="mda", throttle_burst=2)
    url = f"{simulator.api_url('contoso')}/api/v1/alerts/"
    token = simulator.mint_token(app="daemon", audience=MDA, roles=["Investigation.read"])
    responses = [
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10) for _ in range(3)
    ]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "1"
    assert "throttled" in responses[0].json()["error"]["message"]


def test_reset_clears_faults_and_counters(simulator):
    simulator.add_fault(service="all", error_rate=1.0)
    assert discovery(simulator).status_code == 503
    assert simulator.admin("GET", "/faults")["faults"]
    simulator.reset()
    assert simulator.admin("GET", "/faults") == {"faults": []}
    assert simulator.counters() == {"requests": {}}
    assert discovery(simulator).status_code == 200


def test_counters_unit():
    counters = Counters()
    counters.hit("mda", "GET /api/v1/alerts/")
    counters.hit("mda", "GET /api/v1/alerts/", 2)
    counters.incr("tokens", "password")
    snap = counters.snapshot()
    assert snap == {"requests": {"mda": {"GET /api/v1/alerts/": 3}}, "tokens": {"password": 1}}
    assert counters.requests("mda", "GET /api/v1/alerts/") == 3 and counters.get("tokens", "password") == 1
    snap["tokens"]["password"] = 99
    assert counters.get("tokens", "password") == 1  # snapshots are copies


# -- admin API, simulator.json and lifecycle -------------------------------------------------------------


def test_simulator_json_contract(simulator):
    info = json.loads((simulator.state_dir / "simulator.json").read_text())
    contract = (
        "pid authority_host key_vault_url admin_url msi_endpoint msi_header ca_file bundle_file tenant_id"
    )
    for key in [*contract.split(), "apps", "users", "secrets", "mda_tenants"]:
        assert key in info, key
    assert info["key_vault_url"] == info["authority_host"] and info["admin_url"].endswith("/_admin")
    assert info["msi_endpoint"].startswith("http://127.0.0.1:") and info["msi_endpoint"].endswith(
        "/msi/token"
    )
    assert set(info["mda_tenants"]) == {"contoso", "fabrikam"}
    assert info["mda_tenants"]["contoso"]["tenant_id"] == info["tenant_id"]
    assert set(info["apps"]) == {"daemon", "readonly", "public", "webhook_api"}
    assert info["secrets"]["client_secret_name"] == "mcas-client-secret"
    raw = (simulator.state_dir / "simulator.json").read_text()
    assert simulator.secret_value("mcas-client-secret") not in raw
    assert simulator.secret_value("mcas-api-token") not in raw


def test_app_env(simulator):
    env = simulator.app_env("fabrikam")
    assert env["MCAS_API_URL"] == simulator.info["mda_tenants"]["fabrikam"]["api_url"]
    assert env["MCAS_CLIENT_ID"] == simulator.client_id("daemon")
    assert env["MCAS_ALLOW_LOOPBACK"] == "true" and env["REQUESTS_CA_BUNDLE"] == simulator.bundle_file
    assert simulator.app_env(auth_mode="user")["MCAS_CLIENT_ID"] == simulator.client_id("public")
    with pytest.raises(SimulatorError, match="no MDA tenant"):
        simulator.app_env("nowhere")


def test_unknown_admin_endpoint_is_404(simulator):
    with pytest.raises(SimulatorError, match="404"):
        simulator.admin("POST", "/nothing")
    with pytest.raises(SimulatorError, match="404"):
        simulator.approve_device_code("NOPE")


def test_factory_options_and_sigterm(simulator_factory):
    sim = simulator_factory(token_lifetime=120, mda_tenants="")
    assert sim.info["mda_tenants"] == {}
    response = requests.post(
        sim.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id(),
            "client_secret": sim.secret_value("mcas-client-secret"),
            "scope": f"{MDA}/.default",
        },
        timeout=10,
    )
    assert response.json()["expires_in"] == 120
    sim.set_token_lifetime(30)
    token = sim.mint_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 30


def test_clean_shutdown_and_start_failure(tmp_path, simulator_pki):
    proc = start_simulator(tmp_path / "sim", mda_tenants="", pki_dir=simulator_pki.directory)
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(timeout=10) == 0
    assert not (tmp_path / "sim" / "simulator.json").exists()
    with pytest.raises(SimulatorError, match="invalid int value"):
        start_simulator(tmp_path / "bad", rate_limit="lots")


def test_rotating_the_legacy_token_updates_every_mda_tenant(simulator):
    def status(tenant: str, token: str) -> int:
        url = f"{simulator.api_url(tenant)}/api/v1/alerts/"
        return requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=10).status_code

    old = simulator.secret_value("mcas-api-token")
    assert status("contoso", old) == 200
    simulator.rotate_secret("mcas-api-token")
    new = simulator.secret_value("mcas-api-token")
    assert new != old and len(new) >= 64
    assert [status(t, old) for t in ("contoso", "fabrikam")] == [401, 401]
    assert [status(t, new) for t in ("contoso", "fabrikam")] == [200, 200]
