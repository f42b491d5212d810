"""POST/GET jobs against in-memory fakes: status codes, headers, idempotency, what goes on the queue."""

from __future__ import annotations

import json
import time

import pytest

from shared.errors import ConfigurationError
from shared.jobs.http import ApiRequest
from shared.jobs.sealing import unseal
from tests.jobs.builders import (
    CLOSE,
    SEALING_KEY,
    URL,
    bearer_request,
    body,
    rig,
    signed,
    signed_status,
    token,
)


def test_signed_close_is_accepted_recorded_and_queued():
    r = rig()
    answer = r.api.submit(signed(body(CLOSE), headers={"X-Correlation-ID": "soar-123"}))
    assert answer.status == 202
    data = answer.json()
    assert data["status"] == "queued" and data["correlationId"] == "soar-123" and not data["idempotentReplay"]
    assert data["statusUrl"] == f"https://func.example.test/api/jobs/{data['jobId']}"
    assert answer.headers["Location"] == data["statusUrl"]
    assert answer.headers["X-Correlation-ID"] == "soar-123"
    message = json.loads(r.queue.messages[0])
    assert message == {"v": 1, "jobId": data["jobId"], "correlationId": "soar-123", "action": "alerts.close"}
    job = r.api.jobs.get(data["jobId"])
    assert job is not None and job.context == "application" and job.requested_by == {"type": "signature"}
    assert job.spec["params"]["ids"] == CLOSE["ids"]


def test_status_is_readable_by_the_submitter():
    r = rig()
    job_id = r.api.submit(signed(body(CLOSE))).json()["jobId"]
    view = r.api.status(signed_status(job_id), job_id)
    assert view.status == 200
    assert view.json()["jobId"] == job_id and view.json()["status"] == "queued"
    assert r.api.status(signed_status("not-a-uuid"), "not-a-uuid").status == 404
    assert r.api.status(ApiRequest("GET", URL, {}), job_id).status == 401


def test_idempotency_key_returns_the_same_job_without_enqueueing_again():
    r = rig()
    first = r.api.submit(signed(body(CLOSE), headers={"Idempotency-Key": "abc-1"}))
    again = r.api.submit(signed(body(CLOSE), headers={"Idempotency-Key": '"abc-1"'}))
    assert first.status == again.status == 202
    assert again.json()["jobId"] == first.json()["jobId"] and again.json()["idempotentReplay"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(r.queue.messages) == 1
    changed = r.api.submit(signed(body({**CLOSE, "comment": "other"}), headers={"Idempotency-Key": "abc-1"}))
    assert changed.status == 422 and changed.json()["error"] == "idempotency_key_reused"
    assert r.api.submit(signed(body(CLOSE), headers={"Idempotency-Key": "bad key"})).status == 400


def test_a_failed_enqueue_is_503_and_frees_the_key_for_a_retry():
    r = rig()
    r.queue.fail = True
    failed = r.api.submit(signed(body(CLOSE), headers={"Idempotency-Key": "k"}))
    assert failed.status == 503 and failed.headers["Retry-After"]
    r.queue.fail = False
    retried = r.api.submit(signed(body(CLOSE), headers={"Idempotency-Key": "k"}))
    assert retried.status == 202 and not retried.json()["idempotentReplay"] and len(r.queue.messages) == 1


@pytest.mark.parametrize(
    ("request_factory", "status", "code"),
    [
        (
            lambda: ApiRequest("POST", URL, {"Content-Type": "application/json"}, body(CLOSE)),
            401,
            "unauthenticated",
        ),
        (lambda: signed(body(CLOSE), timestamp=int(time.time()) - 600), 401, "signature_timestamp_too_old"),
        (lambda: signed(body(CLOSE), timestamp=int(time.time()) + 600), 401, "signature_timestamp_too_new"),
        (lambda: signed(body(CLOSE), secret="whsec_" + "Zm9v" * 8), 401, "signature_mismatch"),
        (lambda: signed(body(CLOSE), headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (
            lambda: signed(body(CLOSE), headers={"Content-Type": "application/json; charset=latin-1"}),
            415,
            "unsupported_media_type",
        ),
        (lambda: signed(b"{not json"), 400, "invalid_json"),
        (lambda: signed(b"[" * 100_000), 400, "invalid_json"),
        (lambda: signed(b"\xff\xfe"), 400, "invalid_json"),
        (lambda: signed(b""), 400, "invalid_json"),
        (lambda: signed(body({"action": "alerts.close"})), 400, "validation_failed"),
        (lambda: signed(b" " * (1024 * 1024 + 1)), 413, "body_too_large"),
        (
            lambda: signed(body(CLOSE), headers={"Content-Length": str(5 * 1024 * 1024)}),
            413,
            "body_too_large",
        ),
    ],
)
def test_refusals(request_factory, status, code):
    answer = rig().api.submit(request_factory())
    assert answer.status == status, answer.json()
    assert answer.json()["error"] == code
    assert answer.json()["correlationId"]


def test_field_errors_are_returned():
    answer = rig().api.submit(
        signed(body({"action": "alerts.close", "kind": "benign", "ids": ["x"], "reasonId": 0}))
    )
    assert answer.status == 400
    assert set(answer.json()["fieldErrors"]) == {"ids[0]", "reasonId"}


def test_replayed_signed_request_is_refused():
    r = rig()
    request = signed(body(CLOSE))
    assert r.api.submit(request).status == 202
    replay = r.api.submit(request)
    assert replay.status == 401 and replay.json()["error"] == "signature_replayed"
    assert len(r.queue.messages) == 1


def test_app_token_runs_in_application_context():
    r = rig()
    answer = r.api.submit(bearer_request(body(CLOSE), token(roles=["Jobs.Submit"])))
    assert answer.status == 202
    job = r.api.jobs.get(answer.json()["jobId"])
    assert job is not None and job.context == "application" and job.sealed_assertion is None
    assert job.requested_by["type"] == "application"


def test_user_token_is_sealed_with_the_job_and_never_queued():
    r = rig()
    access_token = token(scp="Jobs.Submit access_as_user")
    answer = r.api.submit(bearer_request(body(CLOSE), access_token))
    assert answer.status == 202
    job = r.api.jobs.get(answer.json()["jobId"])
    assert job is not None and job.context == "user" and job.requested_by["name"] == "analyst@contoso.test"
    assert job.sealed_assertion and access_token not in job.sealed_assertion
    assert unseal(SEALING_KEY, job.job_id, job.sealed_assertion) == access_token
    assert access_token not in r.queue.messages[0]
    assert access_token not in json.dumps(
        r.api.status(bearer_request(b"", access_token, method="GET"), job.job_id).json()
    )


def test_user_sees_only_own_jobs():
    r = rig()
    mine = token(scp="Jobs.Submit", oid="user-a")
    job_id = r.api.submit(bearer_request(body(CLOSE), mine)).json()["jobId"]
    assert r.api.status(bearer_request(b"", mine, method="GET"), job_id).status == 200
    other = token(scp="Jobs.Submit", oid="user-b")
    assert r.api.status(bearer_request(b"", other, method="GET"), job_id).status == 404
    assert r.api.status(bearer_request(b"", token(roles=["Jobs.Submit"]), method="GET"), job_id).status == 404


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"aud": "api://someone-else", "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"lifetime": -120, "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"issued": int(time.time()) + 3600, "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"iss": "https://evil.example/tid/v2.0", "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"tid": "other-tenant", "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"kid": "unknown", "roles": ["Jobs.Submit"]}, 401, "invalid_token"),
        ({"roles": ["Something.Else"]}, 403, "insufficient_role"),
        ({"scp": "access_as_user"}, 403, "insufficient_scope"),
        ({}, 403, "insufficient_scope"),
        # idtyp decides the kind, and it must agree with the claims
        ({"roles": ["Jobs.Submit"], "extra": {"idtyp": "user"}}, 401, "invalid_token"),
        ({"scp": "Jobs.Submit", "roles": ["Jobs.Submit"], "extra": {"idtyp": "app"}}, 401, "invalid_token"),
        ({"roles": ["Jobs.Submit"], "extra": {"idtyp": "device"}}, 401, "invalid_token"),
        ({"roles": ["Jobs.Submit"], "extra": {"azp": None}}, 401, "invalid_token"),
    ],
)
def test_bad_tokens(kwargs, status, code):
    answer = rig().api.submit(bearer_request(body(CLOSE), token(**kwargs)))
    assert (answer.status, answer.json()["error"]) == (status, code)
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_signed_by_another_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged = token(roles=["Jobs.Submit"], key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert rig().api.submit(bearer_request(body(CLOSE), forged)).status == 401


def test_user_context_limits():
    r = rig()
    user = token(scp="Jobs.Submit")
    upload = {"action": "discovery.upload", "blob": "logs/a.txt", "source": "SQUID", "stream": "s"}
    assert r.api.submit(bearer_request(body(upload), user)).json()["error"] == "application_context_only"
    other_tenant = r.api.submit(bearer_request(body({**CLOSE, "tenant": "fabrikam"}), user))
    assert (other_tenant.status, other_tenant.json()["error"]) == (403, "tenant_mismatch")


def test_bearer_disabled():
    answer = rig(bearer=False).api.submit(bearer_request(body(CLOSE), token(roles=["Jobs.Submit"])))
    assert (answer.status, answer.json()["error"]) == (401, "bearer_not_accepted")


def test_odd_correlation_ids_are_replaced_not_fatal():
    answer = rig().api.submit(signed(body(CLOSE), headers={"X-Correlation-ID": "bad id\nwith newline"}))
    assert answer.status == 202 and "\n" not in answer.json()["correlationId"]


def test_application_and_signature_callers_are_held_to_their_tenant_scopes():
    other = {**CLOSE, "tenant": "fabrikam"}
    app = token(roles=["Jobs.Submit"])  # azp "caller-app"
    r = rig()
    assert r.api.submit(signed(body(other))).json()["error"] == "tenant_not_allowed"
    assert r.api.submit(bearer_request(body(other), app)).json()["error"] == "tenant_not_allowed"
    assert r.api.submit(signed(body(CLOSE))).status == 202  # the default tenant
    r = rig(tenant_scopes={"caller-app": ("fabrikam",), "*": ("*",)})
    assert r.api.submit(bearer_request(body(other), app)).status == 202
    assert r.api.submit(bearer_request(body(CLOSE), app)).json()["error"] == "tenant_not_allowed"
    assert r.api.submit(signed(body(other))).status == 202  # "*" opens every tenant to the others


def test_tenant_scopes_setting_is_validated():
    from shared.jobs.config import JobsConfig
    from shared.settings import Settings

    env = {
        "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
        "MCAS_TENANT_ID": "tid",
        "MCAS_CLIENT_ID": "cid",
        "MCAS_KEY_VAULT_URL": "https://kv.vault.azure.net",
        "MCAS_TENANT_NAME": "contoso",
    }
    scoped = JobsConfig.from_settings(
        Settings.from_env({**env, "MCAS_WEBHOOK_TENANT_SCOPES": '{"signature": ["contoso"], "app-1": ["*"]}'})
    )
    assert scoped.allowed_tenants("signature") == ("contoso",) and scoped.allowed_tenants("app-1") == (
        "contoso",
    )
    for bad in ("[]", "not json", '{"signature": "contoso"}', '{"signature": ["nope"]}'):
        with pytest.raises(ConfigurationError, match="MCAS_WEBHOOK_TENANT_SCOPES"):
            JobsConfig.from_settings(Settings.from_env({**env, "MCAS_WEBHOOK_TENANT_SCOPES": bad}))
