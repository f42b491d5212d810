"""Hypothesis strategies for job requests: mostly plausible jobs with mutations, plus arbitrary JSON and
bytes, under every authentication shape (good, stale, wrong key, replayed, tokens good and bad, none)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from shared import standard_webhooks as sw

ALERT_ID = st.from_regex(r"\A[0-9a-f]{24}\Z", fullmatch=True)
ODD_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=30)
)
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, ODD_SCALARS)


@st.composite
def plausible_job(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(
        st.sampled_from(
            [
                "alerts.fetch",
                "alerts.close",
                "alerts.mark_read",
                "alerts.mark_unread",
                "discovery.upload",
                "alerts.nope",
            ]
        )
    )
    job: dict[str, Any] = {"action": action}
    if action == "alerts.fetch":
        window = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {"lookback": st.sampled_from(["1h", "90m", "7d", "PT2H", "400d", "x", "0s"])}
                ),
                st.fixed_dictionaries(
                    {
                        "since": st.sampled_from(
                            ["2024-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2024-01-01", "garbage"]
                        )
                    }
                ),
                JSON,
            )
        )
        job["window"] = window
        job["filters"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "severity": st.lists(
                            st.sampled_from(["low", "high", "informational", "bad"]), max_size=4
                        ),
                        "read": _maybe(st.booleans()),
                        "serviceIds": st.lists(st.integers(-5, 2**33), max_size=3),
                    },
                ),
                JSON,
            )
        )
        if draw(st.booleans()):
            job["limit"] = draw(_maybe(st.integers(0, 2000)))
    elif action == "alerts.close":
        job["kind"] = draw(_maybe(st.sampled_from(["benign", "false_positive", "true_positive"])))
        job["ids"] = draw(_maybe(st.lists(st.one_of(ALERT_ID, st.text(max_size=5)), max_size=6)))
        if draw(st.booleans()):
            job["reasonId"] = draw(_maybe(st.integers(-1, 7)))
        for name in ("comment", "feedbackText", "contactEmail"):
            if draw(st.booleans()):
                job[name] = draw(_maybe(st.text(max_size=40)))
        for name in ("sendFeedback", "allowContact"):
            if draw(st.booleans()):
                job[name] = draw(_maybe(st.booleans()))
    elif action in ("alerts.mark_read", "alerts.mark_unread"):
        job["ids"] = draw(_maybe(st.lists(ALERT_ID, max_size=4)))
    elif action == "discovery.upload":
        job["blob"] = draw(
            _maybe(st.sampled_from(["mcas-discovery-logs/fw/a.log", "x", "https://evil/x", "logs/../a"]))
        )
        job["source"] = draw(_maybe(st.sampled_from(["PALO_ALTO", "squid", "NOPE"])))
        job["stream"] = draw(_maybe(st.text(min_size=0, max_size=20)))
    if draw(st.booleans()):
        job["callbackUrl"] = draw(
            _maybe(st.sampled_from(["https://soar.example.com/cb", "http://x", "https://10.1.1.1/"]))
        )
    if draw(st.integers(0, 9)) == 0:
        job[draw(st.text(max_size=8))] = draw(JSON)
    if draw(st.integers(0, 5)) == 0:
        job["tenant"] = draw(_maybe(st.sampled_from(["contoso", "fabrikam", "nope"])))
    return job


@st.composite
def valid_job(draw: st.DrawFn) -> dict[str, Any]:
    """Jobs that pass validation, so the idempotency, record and enqueue layers get exercised too."""
    action = draw(st.sampled_from(["alerts.fetch", "alerts.close", "alerts.mark_read", "alerts.mark_unread"]))
    ids = draw(st.lists(ALERT_ID, min_size=1, max_size=5))
    if action == "alerts.fetch":
        return {
            "action": action,
            "window": {"lookback": draw(st.sampled_from(["15m", "2h", "1d", "P3D"]))},
            "filters": {"severity": draw(st.lists(st.sampled_from(["low", "high"]), min_size=1, max_size=2))},
            "limit": draw(st.integers(1, 1000)),
        }
    if action == "alerts.close":
        kind = draw(st.sampled_from(["benign", "false_positive", "true_positive"]))
        job: dict[str, Any] = {
            "action": action,
            "kind": kind,
            "ids": ids,
            "comment": draw(st.text(max_size=30).filter(str.isprintable)),
        }
        if kind != "true_positive":
            job["reasonId"] = draw(st.sampled_from([2, 4, 5, 6] if kind == "benign" else [0, 1, 3, 4]))
        return job
    return {"action": action, "ids": ids}


BODIES = st.one_of(
    valid_job().map(lambda j: json.dumps(j).encode()),
    plausible_job().map(lambda j: json.dumps(j).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/plain",
        "",
        "application/json; charset=latin-1",
        "multipart/form-data",
    ]
)
AUTH_MODES = st.sampled_from(
    [
        "signed",
        "signed",
        "signed",
        "stale",
        "wrong_key",
        "junk_signature",
        "app_token",
        "user_token",
        "expired_token",
        "garbage_bearer",
        "basic",
        "none",
    ]
)
# Surrounding whitespace is not part of a header value on the wire (RFC 9110 §5.5; requests refuses it).
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)


@dataclass(frozen=True)
class Case:
    body: bytes
    headers: dict[str, str]


@st.composite
def cases(draw: st.DrawFn, *, secret: str, tokens: dict[str, str]) -> Case:
    body = draw(BODIES)
    headers: dict[str, str] = {}
    content_type = draw(CONTENT_TYPES)
    if content_type:
        headers["Content-Type"] = content_type
    mode = draw(AUTH_MODES)
    now = int(time.time())
    key = sw.secret_key(secret)
    msg_id = f"msg_{uuid.uuid4().hex}"
    if mode in ("signed", "stale"):
        headers.update(sw.signed_headers(key, msg_id, body, timestamp=now - (900 if mode == "stale" else 0)))
    elif mode == "wrong_key":
        headers.update(sw.signed_headers(b"wrong-key-bytes", msg_id, body, timestamp=now))
    elif mode == "junk_signature":
        headers.update(
            {
                "webhook-id": draw(HEADER_TEXT),
                "webhook-timestamp": draw(HEADER_TEXT),
                "webhook-signature": draw(HEADER_TEXT),
            }
        )
    elif mode in ("app_token", "user_token", "expired_token"):
        headers["Authorization"] = f"Bearer {tokens[mode]}"
    elif mode == "garbage_bearer":
        headers["Authorization"] = "Bearer " + draw(HEADER_TEXT)
    elif mode == "basic":
        headers["Authorization"] = "Basic dXNlcjpwdw=="
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.one_of(HEADER_TEXT, st.just("same-key")))
    if draw(st.booleans()):
        headers["X-Correlation-ID"] = draw(HEADER_TEXT)
    return Case(body, headers)
