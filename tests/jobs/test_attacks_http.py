"""Attacks on the jobs API's HTTP surface, replayed over real HTTP: a SOAR-style client -> the LocalHost
(function key) -> intake -> Azurite -> worker -> callbacks, with tokens and Key Vault from the simulator.

Each test performs one attack that used to work and asserts it no longer does (the finding it guards is
named in its docstring). Name resolution for the callback tests is controlled by the test: the system
resolver (`socket.getaddrinfo`) answers chosen addresses for an attacker's name, and urllib3's connect step
refuses anything but loopback (the test machine has no internet), recording where each connection went.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared import standard_webhooks as sw
from shared.caches import reset_all_caches
from shared.storage import CONTAINER_DISCOVERY_LOGS, QUEUE_JOBS, container_client, queue_client
from tests.jobs.harness import (
    FUNCTION_KEY,
    WEBHOOK_SECRET,
    Client,
    running_host,
    signed_status_headers,
)
from tests.jobs.test_jobs_http import accepted, run_to_completion

ATTACKER_NAME = "rebind.attacker.test"
PUBLIC = "93.184.216.34"
MARK = {"action": "alerts.mark_read", "ids": ["e" * 24]}


@pytest.fixture
def host(jobs_env: dict[str, Any]) -> Iterator[Any]:
    """The conftest's host, and the jobs queue emptied afterwards."""
    with running_host() as running:
        yield running
    queue_client(QUEUE_JOBS).clear_messages()


class Network:
    """The resolver and the connect step the app sees: scripted answers for one name, loopback only."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: list[list[str]]) -> None:
        from urllib3.util import connection

        self.answers = answers  # one list per lookup of ATTACKER_NAME; the last one repeats
        self.lookups = 0
        self.connects: list[tuple[str, int]] = []  # (address, port) of every connection the app opened
        real_getaddrinfo = socket.getaddrinfo
        real_connect = connection.create_connection

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != ATTACKER_NAME:
                return real_getaddrinfo(host, port, *args, **kwargs)
            answer = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answer
            ]

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            host = str(address[0])
            self.connects.append((host, int(address[1])))
            if host not in ("127.0.0.1", "::1", "localhost", ATTACKER_NAME):
                raise ConnectionRefusedError(f"no route to {host} from the test machine")
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(connection, "create_connection", create_connection)


def _callback_of(host: Any, client: Client, job_id: str) -> dict[str, Any]:
    data = run_to_completion(host, client, job_id)
    callback: dict[str, Any] = data["callback"]
    return callback


# -- 1. DNS rebinding of callback hosts ----------------------------------------------------------------------


def test_callback_dns_rebinding_never_reaches_the_rebound_address(
    jobs_env, host, client, receiver, monkeypatch
):
    """Finding 1: the name answers a public address to the check and 127.0.0.1 to the connection."""
    network = Network(monkeypatch, [[PUBLIC], ["127.0.0.1"]])
    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    job_id = accepted(client.submit({**MARK, "callbackUrl": f"https://{ATTACKER_NAME}:{port}/cb"}))

    callback = _callback_of(host, client, job_id)

    assert receiver.deliveries == []  # the signed result never reached the loopback receiver
    assert network.lookups == 1  # resolved once, at the check
    to_receiver_port = {address for address, used_port in network.connects if used_port == int(port)}
    assert to_receiver_port == {PUBLIC}  # every attempt went to the checked address, none to loopback
    assert (callback["status"], callback["detail"]) == ("failed", "the receiver could not be reached")


def test_callback_host_with_any_private_address_is_refused(jobs_env, host, client, receiver, monkeypatch):
    """Finding 1: every address of the name is checked, not just the first."""
    network = Network(monkeypatch, [[PUBLIC, "127.0.0.1"]])
    job_id = accepted(client.submit({**MARK, "callbackUrl": f"https://{ATTACKER_NAME}/cb"}))

    callback = _callback_of(host, client, job_id)

    assert callback["status"] == "refused" and callback["attempts"] == 0
    assert all(address != PUBLIC for address, _ in network.connects) and receiver.deliveries == []


def test_callback_failures_do_not_reveal_what_answered_on_the_port(jobs_env, host, client):
    """Finding 1: a closed port (connection refused) and a port that answers without TLS (an SSL error) used
    to be told apart in the job result: a port probe. Both now read the same."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # released when the block ends: nothing listens there
    plain_http_port = host.api_url.rsplit(":", 1)[1].split("/")[0]  # the host itself speaks plain HTTP
    closed = accepted(client.submit({**MARK, "callbackUrl": f"https://127.0.0.1:{closed_port}/cb"}))
    no_tls = accepted(client.submit({**MARK, "callbackUrl": f"https://127.0.0.1:{plain_http_port}/cb"}))

    outcomes = [_callback_of(host, client, job_id) for job_id in (closed, no_tls)]

    shown = [{k: v for k, v in outcome.items() if k not in ("at", "url")} for outcome in outcomes]
    assert (
        shown[0]
        == shown[1]
        == {
            "status": "failed",
            "attempts": 3,
            "detail": "the receiver could not be reached",
        }
    )
    text = json.dumps(outcomes)
    assert "Error" not in text and "SSL" not in text and "refused" not in text


# -- 7. IPv6 forms of private addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "[::127.0.0.1]",  # IPv4-compatible loopback
        "[::ffff:10.0.0.1]",  # IPv4-mapped private
        "[64:ff9b::a9fe:a9fe]",  # NAT64 form of 169.254.169.254 (instance metadata)
        "[64:ff9b::7f00:1]",  # NAT64 form of 127.0.0.1
        "[2002:c0a8:101::1]",  # 6to4 form of 192.168.1.1
    ],
)
def test_ipv6_forms_of_private_callback_addresses_are_refused_at_intake(jobs_env, client, literal):
    """Finding 7: literal IPv6 forms that carry a private IPv4 address."""
    answer = client.submit({**MARK, "callbackUrl": f"https://{literal}/cb"})
    assert answer.status_code == 400, answer.text
    assert "callbackUrl" in answer.json()["fieldErrors"]


def test_a_name_resolving_to_a_nat64_private_address_is_refused_at_send_time(
    jobs_env, host, client, monkeypatch
):
    """Finding 7: the same forms when a host name resolves to them."""
    network = Network(monkeypatch, [["64:ff9b::a9fe:a9fe"]])
    job_id = accepted(client.submit({**MARK, "callbackUrl": f"https://{ATTACKER_NAME}/cb"}))
    callback = _callback_of(host, client, job_id)
    assert callback["status"] == "refused" and network.lookups == 1
    assert not any(address.startswith("64:ff9b") for address, _ in network.connects)


# -- 2. discovery jobs reading other containers --------------------------------------------------------------


def _upload(blob: str) -> dict[str, Any]:
    return {"action": "discovery.upload", "blob": blob, "source": "PALO_ALTO", "stream": "paloalto-hq"}


@pytest.mark.parametrize(
    "blob",
    [
        "azure-webjobs-secrets/func-mcas/host.json",
        f"/{CONTAINER_DISCOVERY_LOGS}/x.log",
        f"{CONTAINER_DISCOVERY_LOGS}/../azure-webjobs-secrets/func-mcas/host.json",
        f"{CONTAINER_DISCOVERY_LOGS}/%2e%2e/azure-webjobs-secrets/func-mcas/host.json",
        f"{CONTAINER_DISCOVERY_LOGS}/%2E%2E%2Fazure-webjobs-secrets/func-mcas/host.json",
        f"{CONTAINER_DISCOVERY_LOGS}/./x.log",
        f"{CONTAINER_DISCOVERY_LOGS}/a//x.log",
        f"{CONTAINER_DISCOVERY_LOGS}/a\\..\\..\\azure-webjobs-secrets/host.json",
    ],
)
def test_discovery_jobs_cannot_name_blobs_outside_the_discovery_container(jobs_env, client, blob):
    """Finding 2: `blob` reached the Functions host's secrets container (and `..` was resolved by storage)."""
    secrets_container = container_client("azure-webjobs-secrets")
    if not secrets_container.exists():
        secrets_container.create_container()
    secrets_container.upload_blob("func-mcas/host.json", b'{"masterKey": "not-for-you"}', overwrite=True)
    answer = client.submit(_upload(blob))
    assert answer.status_code == 400, answer.text
    assert set(answer.json()["fieldErrors"]) == {"blob"}


def test_discovery_blob_urls_with_dot_segments_are_refused(jobs_env, client):
    """Finding 2: the URL form, with `..` that storage would resolve into another container."""
    from shared.discovery.handler import storage_account

    base = storage_account().url.rstrip("/")
    for url in (
        f"{base}/{CONTAINER_DISCOVERY_LOGS}/../azure-webjobs-secrets/func-mcas/host.json",
        f"{base}/{CONTAINER_DISCOVERY_LOGS}/%2e%2e/azure-webjobs-secrets/func-mcas/host.json",
        f"{base}/azure-webjobs-secrets/func-mcas/host.json",
    ):
        answer = client.submit(_upload(url))
        assert answer.status_code == 400 and "blob" in answer.json()["fieldErrors"], (url, answer.text)


def test_extra_discovery_containers_are_opened_by_setting(jobs_env, client, monkeypatch):
    """Finding 2: containers named in MCAS_DISCOVERY_EXTRA_CONTAINERS are allowed, and only those."""
    extra = f"fw-{uuid.uuid4().hex[:12]}"
    assert client.submit(_upload(f"{extra}/x.log")).status_code == 400
    monkeypatch.setenv("MCAS_DISCOVERY_EXTRA_CONTAINERS", extra)
    reset_all_caches()
    assert client.submit(_upload(f"{extra}/x.log")).status_code == 202
    assert client.submit(_upload("azure-webjobs-secrets/func-mcas/host.json")).status_code == 400


# -- 3. job status owner scoping -----------------------------------------------------------------------------


def test_jobs_are_visible_to_their_submitter_only(jobs_env, client):
    """Finding 3: any signer or any app with Jobs.Submit could read any job, including an analyst's UPN."""
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    audience = webhook["client_id"]
    app_a = sim.mint_token(app="daemon", audience=audience, roles=["Jobs.Submit"])
    app_b = sim.mint_token(app="readonly", audience=audience, roles=["Jobs.Submit"])
    analyst = sim.mint_token(app="public", audience=audience, scp="Jobs.Submit", user="analyst")
    other_key = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    sim.set_secret("mcas-webhook-secret", f"{WEBHOOK_SECRET} {other_key}")  # two SOAR keys (rotation)
    reset_all_caches()

    signed_job = accepted(client.submit(MARK))
    app_job = accepted(client.submit(MARK, auth="bearer", token=app_a))
    user_job = accepted(client.submit(MARK, auth="bearer", token=analyst))

    assert client.status(signed_job).status_code == 200
    assert client.status(app_job, token=app_a).status_code == 200
    assert client.status(user_job, token=analyst).status_code == 200
    for job_id, reader in (
        (signed_job, {"token": app_a}),
        (signed_job, {"secret": other_key}),  # another holder of a configured key
        (app_job, {"token": app_b}),
        (app_job, {}),
        (user_job, {}),
        (user_job, {"token": app_a}),
    ):
        answer = client.status(job_id, **reader)
        assert answer.status_code == 404, (job_id, reader, answer.text)
        assert "analyst" not in answer.text


def test_callback_query_strings_are_never_shown(jobs_env, client):
    """Finding 3: the callback URL's query (often the receiver's own token) was returned with the job."""
    job_id = accepted(client.submit({**MARK, "callbackUrl": "https://soar.example.com/hook?token=s3cr3t"}))
    view = client.status(job_id).json()
    assert view["callback"]["url"] == "https://soar.example.com/hook"
    assert "s3cr3t" not in json.dumps(view)


# -- 4. replayable, unbound status reads ---------------------------------------------------------------------


def test_signed_status_reads_are_bound_to_the_job_and_used_once(jobs_env, client):
    """Finding 4: one set of signature headers over an empty body read three jobs, four times."""
    first, second = accepted(client.submit(MARK)), accepted(client.submit(MARK))
    headers = signed_status_headers(first)
    assert client.status(first, headers=headers).status_code == 200
    replay = client.status(first, headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "signature_replayed")
    other = client.status(second, headers=signed_status_headers(first))
    assert (other.status_code, other.json()["error"]) == (401, "signature_mismatch")
    empty_body = sw.signed_headers(sw.secret_key(WEBHOOK_SECRET), f"msg_{uuid.uuid4().hex}", b"")
    assert client.status(first, headers=empty_body).status_code == 401


# -- 5. tenant scopes ----------------------------------------------------------------------------------------


def test_callers_reach_only_the_tenants_they_are_scoped_to(jobs_env, client, monkeypatch):
    """Finding 5: application and signature callers could target any tenant profile."""
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    monkeypatch.setenv("MCAS_TENANT_PROFILES", json.dumps([{"name": "contoso"}, {"name": "fabrikam"}]))
    reset_all_caches()
    app = sim.mint_token(app="daemon", audience=webhook["client_id"], roles=["Jobs.Submit"])
    other = {**MARK, "tenant": "fabrikam"}

    for answer in (client.submit(other), client.submit(other, auth="bearer", token=app)):
        assert (answer.status_code, answer.json()["error"]) == (403, "tenant_not_allowed"), answer.text
    assert client.submit(MARK).status_code == 202  # the default tenant stays open

    daemon_id = sim.apps["daemon"]["client_id"]
    monkeypatch.setenv("MCAS_WEBHOOK_TENANT_SCOPES", json.dumps({daemon_id: ["contoso", "fabrikam"]}))
    reset_all_caches()
    assert client.submit(other, auth="bearer", token=app).status_code == 202
    assert client.submit(other).status_code == 403  # the signature caller is still unlisted


# -- 6. user vs application tokens ---------------------------------------------------------------------------


def test_a_token_claiming_a_user_with_roles_only_is_refused(jobs_env, client):
    """Finding 6: without `scp` a user's token was taken for an application token."""
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    user_with_roles = sim.mint_token(
        app="public", audience=webhook["client_id"], roles=["Jobs.Submit"], user="analyst"
    )
    answer = client.submit(MARK, auth="bearer", token=user_with_roles)
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_token"), answer.text


# -- 9. duplicate JSON keys ----------------------------------------------------------------------------------


def test_duplicate_json_keys_are_refused(jobs_env, client):
    """Finding 9: `"action"` twice ran the second one."""
    body = b'{"action": "alerts.mark_read", "action": "alerts.mark_unread", "ids": ["' + b"e" * 24 + b'"]}'
    answer = client.submit(body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["fieldErrors"] == {"action": "is given more than once; send each field once"}
    nested = b'{"action": "alerts.fetch", "window": {"lookback": "1h", "lookback": "180d"}}'
    answer = client.submit(nested)
    assert answer.status_code == 400 and "lookback" in answer.json()["fieldErrors"], answer.text


# -- 10 / 11. the webhook secret -----------------------------------------------------------------------------


def test_an_unpadded_whsec_secret_is_accepted(jobs_env, client):
    """Finding 10: the official Standard Webhooks libraries accept a secret without base64 padding."""
    raw = secrets.token_bytes(32)  # 44 base64 chars, one "=" of padding
    unpadded = "whsec_" + base64.b64encode(raw).decode().rstrip("=")
    jobs_env["sim"].set_secret("mcas-webhook-secret", unpadded)
    reset_all_caches()
    assert client.submit(MARK, secret=unpadded).status_code == 202


def test_fixing_a_malformed_secret_in_the_vault_takes_effect_without_a_restart(jobs_env, client, monkeypatch):
    """Finding 11: a malformed secret failed before the refresh path, so a fix waited for the cache TTL.

    The refresh stays rate-limited (30 s, a unit test checks it); here the limit is lifted so the test does
    not wait, and what is checked is that a malformed cached secret leads to a re-read at all."""
    from shared.jobs import signature

    sim = jobs_env["sim"]
    sim.set_secret("mcas-webhook-secret", "whsec_not*base64")
    reset_all_caches()
    monkeypatch.setattr(signature, "REFRESH_INTERVAL_S", 0.0)
    broken = client.submit(MARK)
    assert (broken.status_code, broken.json()["error"]) == (401, "signature_not_configured")
    sim.set_secret("mcas-webhook-secret", WEBHOOK_SECRET)  # the fix, in the vault only
    assert client.submit(MARK).status_code == 202


# -- 12. the OpenAPI document and the function key -----------------------------------------------------------


def test_the_openapi_document_declares_the_function_key_the_host_enforces(jobs_env, client):
    """Finding 12: the document never required `functionKey` and declared /openapi.json open."""
    import requests

    assert requests.get(f"{client.base}/openapi.json", timeout=10).status_code == 401
    document = requests.get(
        f"{client.base}/openapi.json", headers={"x-functions-key": FUNCTION_KEY}, timeout=10
    ).json()
    urls = {
        "submitJob": ("POST", f"{client.base}/jobs"),
        "getJob": ("GET", f"{client.base}/jobs/{uuid.uuid4()}"),
        "getOpenApi": ("GET", f"{client.base}/openapi.json"),
    }
    for path in document["paths"].values():
        for operation in path.values():
            requirements = operation.get("security", document["security"])
            assert requirements and all("functionKey" in option for option in requirements), operation
            method, url = urls[operation["operationId"]]
            assert requests.request(method, url, timeout=10).status_code == 401  # the host wants the key
