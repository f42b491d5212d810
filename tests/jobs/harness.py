"""Integration harness for the jobs API: the jobs blueprint on a LocalHost, signed/bearer HTTP clients and a
tiny HTTPS callback receiver that trusts nothing but a valid Standard Webhooks signature."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import azure.functions as func
import requests

from localdev.host import LocalHost
from shared import standard_webhooks as sw
from shared.jobs.signature import status_payload

FUNCTION_KEY = "jobs-test-function-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
SEALING_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
HOST_JSON = {
    "functionTimeout": "00:02:00",
    "extensions": {"queues": {"maxDequeueCount": 2, "visibilityTimeout": "00:00:00", "batchSize": 8}},
}


def jobs_app() -> func.FunctionApp:
    """Only the jobs functions: the session's Azurite is shared, so other features' queues are left alone."""
    from functions import jobs

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(jobs.bp)
    return app


@contextmanager
def running_host() -> Iterator[LocalHost]:
    host = LocalHost(jobs_app(), host_json=HOST_JSON, function_key=FUNCTION_KEY)
    host.start(queues=False, timers=False)
    try:
        yield host
    finally:
        host.stop()


@dataclass
class Client:
    base: str  # .../api
    session: requests.Session = field(default_factory=requests.Session)

    def submit(
        self,
        payload: Any,
        *,
        auth: str | None = "signed",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        secret: str = WEBHOOK_SECRET,
        msg_id: str | None = None,
        key: bool = True,
    ) -> requests.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key:
            all_headers["x-functions-key"] = FUNCTION_KEY
        if auth == "signed":
            ts = int(time.time()) if timestamp is None else timestamp
            all_headers.update(
                sw.signed_headers(
                    sw.secret_key(secret), msg_id or f"msg_{uuid.uuid4().hex}", body, timestamp=ts
                )
            )
        elif auth == "bearer":
            all_headers["Authorization"] = f"Bearer {token}"
        return self.session.post(f"{self.base}/jobs", data=body, headers=all_headers, timeout=30)

    def status(
        self,
        job_id: str,
        *,
        token: str | None = None,
        secret: str = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """GET the job: with a bearer token, with `headers` as given (replays), or signed over the canonical
        `GET\n/api/jobs/{id}\n` payload with a fresh webhook-id."""
        all_headers = {"x-functions-key": FUNCTION_KEY}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        elif headers is not None:
            all_headers.update(headers)
        else:
            all_headers.update(signed_status_headers(job_id, secret=secret))
        return self.session.get(f"{self.base}/jobs/{job_id}", headers=all_headers, timeout=30)


def signed_status_headers(job_id: str, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return sw.signed_headers(sw.secret_key(secret), f"msg_{uuid.uuid4().hex}", status_payload(job_id))


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified: bool

    def json(self) -> Any:
        return json.loads(self.body)


class CallbackReceiver:
    """HTTPS on 127.0.0.1 (test CA server cert); records every POST and whether its signature verified."""

    def __init__(self, cert_file: Path, key_file: Path, *, secret: str = WEBHOOK_SECRET) -> None:
        self.deliveries: list[Delivery] = []
        self.fail_next = 0  # answer 503 to this many requests first
        self._lock = threading.Lock()
        self._event = threading.Condition(self._lock)
        keys = [sw.secret_key(secret)]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    sw.verify(body, headers, keys)
                    ok = True
                except sw.WebhookVerificationError:
                    ok = False
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= 1 if failing else 0
                    receiver.deliveries.append(Delivery(headers, body, ok))
                    receiver._event.notify_all()
                self.send_response(503 if failing else (204 if ok else 401))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file), str(key_file))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/cb"

    def for_job(self, job_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.headers.get("webhook-id") == f"job_{job_id}"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
