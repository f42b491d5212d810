"""Standard Webhooks: the reference vector, the time window, rotation, replay refusal - all against fakes."""

from __future__ import annotations

import base64

import pytest

from shared import standard_webhooks as sw
from shared.errors import TransientError
from shared.jobs.claims import SeenWebhookIds
from shared.jobs.principal import AuthFailure, AuthUnavailable
from shared.jobs.signature import SignatureAuthenticator, WebhookKeys, key_fingerprint, parse_secrets
from tests.jobs.builders import OTHER_SECRET, SECRET
from tests.jobs.fakes import FakeTable

# The Standard Webhooks / Svix reference test vector.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TS = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(sig: str = REF_SIG, ts: int = REF_TS, msg_id: str = REF_ID) -> dict[str, str]:
    return {"Webhook-Id": msg_id, "WEBHOOK-TIMESTAMP": str(ts), "webhook-signature": sig}


def test_reference_vector_signs_and_verifies():
    key = sw.secret_key(REF_SECRET)
    assert sw.sign(key, REF_ID, REF_TS, REF_BODY) == REF_SIG
    verified = sw.verify(REF_BODY, headers(), [key], now=lambda: REF_TS + 10)
    assert (verified.msg_id, verified.timestamp) == (REF_ID, REF_TS)


@pytest.mark.parametrize(
    ("hdrs", "reason"),
    [
        ({}, "missing_headers"),
        (headers(ts=REF_TS - 301), "timestamp_too_old"),
        (headers(ts=REF_TS + 301), "timestamp_too_new"),
        (
            {"webhook-id": REF_ID, "webhook-timestamp": "1614265330.5", "webhook-signature": REF_SIG},
            "invalid_timestamp",
        ),
        (headers(sig="v1,AAAA" + REF_SIG[7:]), "no_matching_signature"),
        (headers(sig="v2,abc nocomma v1"), "invalid_signature"),
        (headers(msg_id="x" * 300), "invalid_id"),
    ],
)
def test_refusals_have_stable_reasons(hdrs, reason):
    key = sw.secret_key(REF_SECRET)
    # timestamps in the table are relative to the reference time, so the clock is pinned to it
    with pytest.raises(sw.WebhookVerificationError) as caught:
        sw.verify(REF_BODY, hdrs, [key], now=lambda: REF_TS)
    assert caught.value.reason == reason


def test_window_is_inclusive_at_five_minutes_and_body_is_covered():
    key = sw.secret_key(REF_SECRET)
    sw.verify(REF_BODY, headers(), [key], now=lambda: REF_TS + 300)
    with pytest.raises(sw.WebhookVerificationError):
        sw.verify(REF_BODY + b" ", headers(), [key], now=lambda: REF_TS)


def test_any_of_several_signatures_and_any_of_several_keys():
    key, other = sw.secret_key(REF_SECRET), sw.secret_key(OTHER_SECRET)
    mixed = f"v1a,zzz v1,{'A' * 44} {REF_SIG}"
    sw.verify(REF_BODY, headers(sig=mixed), [key], now=lambda: REF_TS)
    sw.verify(REF_BODY, headers(), [other, key], now=lambda: REF_TS)
    assert parse_secrets(f"{SECRET}  {OTHER_SECRET}\n") == [sw.secret_key(SECRET), other]


@pytest.mark.parametrize("bad", ["", "whsec_", "whsec_not base64!"])
def test_bad_secrets_are_configuration_errors(bad):
    with pytest.raises(sw.WebhookSecretError):
        parse_secrets(bad) if bad else sw.secret_key(bad)


def _authenticator(values: list[str], table: FakeTable, clock: list[float]) -> SignatureAuthenticator:
    reads: list[bool] = []

    def read(bypass: bool) -> str:
        reads.append(bypass)
        return values[-1] if bypass else values[0]

    keys = WebhookKeys(read, clock=lambda: clock[0])
    seen = SeenWebhookIds(table, retention_s=660)
    auth = SignatureAuthenticator(
        keys, lambda msg_id: seen.first_use(msg_id, now=clock[0]), now=lambda: REF_TS
    )
    auth.reads = reads  # type: ignore[attr-defined]
    return auth


def test_rotation_is_picked_up_with_one_rate_limited_refresh():
    clock = [1000.0]
    auth = _authenticator([OTHER_SECRET, REF_SECRET], FakeTable(), clock)
    auth.authenticate(REF_BODY, headers())  # cached value is old: one refresh finds the rotated secret
    assert auth.reads == [False, True]  # type: ignore[attr-defined]
    with pytest.raises(AuthFailure):  # a bad signature right after may not trigger another vault read
        auth.authenticate(REF_BODY, headers(sig="v1," + "B" * 44, msg_id="msg_2"))
    assert auth.reads.count(True) == 1  # type: ignore[attr-defined]


def test_replayed_id_is_refused_but_only_after_the_signature_checks():
    clock = [1000.0]
    table = FakeTable()
    auth = _authenticator([REF_SECRET], table, clock)
    with pytest.raises(AuthFailure):
        auth.authenticate(REF_BODY, headers(sig="v1," + "C" * 44))
    assert table.rows("webhook-id") == []  # unauthenticated traffic records nothing
    auth.authenticate(REF_BODY, headers())
    with pytest.raises(AuthFailure) as caught:
        auth.authenticate(REF_BODY, headers())
    assert (caught.value.status, caught.value.code) == (401, "signature_replayed")


def test_seen_ids_expire_after_retention():
    table = FakeTable()
    seen = SeenWebhookIds(table, retention_s=60)
    assert seen.first_use("a", now=0) and not seen.first_use("a", now=59) and seen.first_use("a", now=61)


def test_vault_outage_is_unavailable_not_unauthorized():
    def read(bypass: bool) -> str:
        raise TransientError("vault down")

    auth = SignatureAuthenticator(WebhookKeys(read), lambda _: True, now=lambda: REF_TS)
    with pytest.raises(AuthUnavailable):
        auth.authenticate(REF_BODY, headers())


def test_keys_are_never_shorter_than_decoded_secret():
    assert sw.secret_key(SECRET) == base64.b64decode(SECRET.removeprefix("whsec_"))


def test_unpadded_secrets_are_accepted_like_the_official_libraries_do():
    raw = b"\x01" * 32
    padded = "whsec_" + base64.b64encode(raw).decode()
    assert padded.endswith("=")
    assert sw.secret_key(padded.rstrip("=")) == sw.secret_key(padded) == raw
    with pytest.raises(sw.WebhookSecretError):
        sw.secret_key("whsec_a")  # one base64 char can never be a key


def test_a_malformed_secret_is_reread_like_a_mismatch_and_as_rarely():
    clock = [1000.0]
    auth = _authenticator(["whsec_not*base64", REF_SECRET], FakeTable(), clock)
    auth.authenticate(REF_BODY, headers())  # cached value malformed: one refresh finds the fixed secret
    assert auth.reads == [False, True]  # type: ignore[attr-defined]

    broken = _authenticator(["whsec_not*base64"], FakeTable(), clock)
    for msg_id in ("m1", "m2", "m3"):
        with pytest.raises(AuthFailure) as caught:
            broken.authenticate(REF_BODY, headers(msg_id=msg_id))
        assert caught.value.code == "signature_not_configured"
    assert broken.reads.count(True) == 1  # type: ignore[attr-defined]  # bounded: one vault read per interval


def test_the_signer_is_named_by_its_key():
    clock = [1000.0]
    auth = _authenticator([f"{OTHER_SECRET} {REF_SECRET}"], FakeTable(), clock)
    principal = auth.authenticate(REF_BODY, headers())
    assert principal.subject == key_fingerprint(sw.secret_key(REF_SECRET))
    assert principal.subject != key_fingerprint(sw.secret_key(OTHER_SECRET))
