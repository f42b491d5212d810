"""Listeners and plumbing: sockets and TLS in, `SimRequest` to a service, `SimResponse` out.

Four kinds of listener, all on 127.0.0.1 with ephemeral ports: the main HTTPS port (Entra ID, Key Vault,
admin), a plain-HTTP managed identity port, one HTTPS port per MDA tenant (a tenant is a host), and an HTTPS
port for the Logs Ingestion endpoint (a data collection rule's own host). Every
request to Entra, Key Vault and MSI is counted and passes fault injection first; the MDA service does both
itself because only it knows whether a path is API, blob or S3 traffic. `abort=True` becomes a TCP reset.

TLS handshakes run in the per-connection thread (not in the accept loop), so one slow client cannot stall a
listener; connections are HTTP/1.1 keep-alive like the real services, which MSAL and requests rely on.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from localdev.pki import TestPki, ensure_test_pki
from localdev.simulator.admin import AdminService
from localdev.simulator.wire import SimRequest, SimResponse
from localdev.simulator.world import MdaServiceLike, World, WorldOptions

Dispatch = Callable[[SimRequest], SimResponse]
STATE_FILE = "simulator.json"
_MAX_BUFFERED_BODY = 256 * 1024 * 1024
_DRAIN_LIMIT = 16 * 1024 * 1024


class BodyReader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class StreamingService(Protocol):
    """Optional MDA extension: upload PUTs get the unread body instead of a buffered `req.body`."""

    def wants_stream(self, method: str, path: str) -> bool: ...

    def handle_stream(self, req: SimRequest, body: BodyReader) -> SimResponse: ...


class _LimitedReader:
    """A file-like view of exactly `remaining` bytes of the request body."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        self._raw = raw
        self.remaining = length

    def read(self, size: int = -1, /) -> bytes:
        if self.remaining <= 0:
            return b""
        n = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._raw.read(n)
        self.remaining -= len(data)
        if not data:
            self.remaining = 0
        return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, name: str, ssl_context: ssl.SSLContext | None, *, verbose: bool) -> None:
        self.name = name
        self.ssl_context = ssl_context
        self.verbose = verbose
        self.dispatch: Dispatch = lambda req: SimResponse.json(503, {"error": "starting"})
        self.streaming: StreamingService | None = None
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Do the TLS handshake here, in the connection's own thread."""
        with contextlib.suppress(OSError):  # no Nagle delay between the header and body writes
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(15)
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if self.verbose:
                print(f"[{self.name}] TLS handshake failed: {exc}", file=sys.stderr)
            with contextlib.suppress(OSError):
                request.close()
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with contextlib.suppress(OSError):
                wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.verbose:
            traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mcas-localdev-simulator"
    sys_version = ""
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"[{self.server.name}] {format % args}\n")

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BUFFERED_BODY:
                raise ValueError("request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = SimRequest(
            method=self.command,
            path=unquote(split.path) or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            listener=self.server.name,
        )
        reader: _LimitedReader | None = None
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                req.body = self._read_chunked()
                req.headers["content-length"] = str(len(req.body))
                req.headers.pop("transfer-encoding", None)
            else:
                length = int(headers.get("content-length") or 0)
                streaming = self.server.streaming
                if streaming is not None and streaming.wants_stream(req.method, req.path):
                    reader = _LimitedReader(self.rfile, length)  # type: ignore[arg-type]
                elif length > _MAX_BUFFERED_BODY:
                    self._send(SimResponse.json(413, {"error": "request body too large"}))
                    self.close_connection = True
                    return
                else:
                    req.body = self.rfile.read(length) if length else b""
        except (ValueError, OSError):
            self.close_connection = True
            return
        try:
            if reader is not None and self.server.streaming is not None:
                response = self.server.streaming.handle_stream(req, reader)
            else:
                response = self.server.dispatch(req)
        except Exception:  # a bug in a service must not kill the listener; answer like a real 500
            traceback.print_exc(file=sys.stderr)
            response = SimResponse.json(500, {"error": "internal_error", "detail": "simulator bug, see log"})
        if response.abort:
            self._abort()
            return
        if reader is not None and reader.remaining:
            if reader.remaining > _DRAIN_LIMIT:
                self.close_connection = True
            else:
                while reader.read(65536):
                    pass
        self._send(response)

    def _send(self, response: SimResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _abort(self) -> None:
        """Drop the connection without an answer: RST thanks to SO_LINGER 0 (a simulated reset)."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()


@dataclass
class Listener:
    name: str
    server: _Server
    thread: threading.Thread
    url: str
    shared_loop: bool = False  # accepted by the MDA tenants' one accept loop, not its own thread


class _AcceptLoop:
    """One thread accepting on every MDA tenant's port, so hundreds of tenants cost one idle thread, not
    hundreds (each connection is still served in its own thread, TLS handshake included)."""

    def __init__(self) -> None:
        self.servers: list[_Server] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sim-mda-accept", daemon=True)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for server in self.servers:
                selector.register(server, selectors.EVENT_READ, server)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    server = key.data
                    server._handle_request_noblock()  # serve_forever's own step, for many sockets

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)


def _load_mda_class() -> Callable[..., MdaServiceLike] | None:
    """The MDA service class, or None while localdev/simulator/mda.py does not exist."""
    try:
        module = importlib.import_module("localdev.simulator.mda")
    except ModuleNotFoundError as exc:
        if exc.name == "localdev.simulator.mda":
            return None
        raise
    cls: Callable[..., MdaServiceLike] | None = getattr(module, "MdaService", None)
    return cls


class Simulator:
    """The whole simulator in one process: build the world, bind listeners, publish simulator.json."""

    def __init__(
        self,
        state_dir: Path,
        options: WorldOptions,
        *,
        pki_dir: Path | None = None,
        verbose: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.options = options
        self.pki_dir = pki_dir or state_dir / "pki"
        self.verbose = verbose
        self.listeners: list[Listener] = []
        self._mda_loop = _AcceptLoop()
        self.world: World | None = None
        self.pki: TestPki | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Bind every listener, then write simulator.json atomically (readers poll for it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state_file = self.state_dir / STATE_FILE
        state_file.unlink(missing_ok=True)
        self.pki = ensure_test_pki(self.pki_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.pki.cert_file, self.pki.key_file)

        main = _Server("main", context, verbose=self.verbose)
        authority = f"https://127.0.0.1:{main.port}"
        world = World(authority, self.options)
        self.world = world
        admin = AdminService(world, self.describe)
        main.dispatch = self._main_dispatch(world, admin)
        self._add(main, authority)

        msi = _Server("msi", None, verbose=self.verbose)
        msi.dispatch = self._service_dispatch(world, "msi", world.msi.handle, world.msi.endpoint_name)
        self._add(msi, f"http://127.0.0.1:{msi.port}")

        logs = _Server("logs", context, verbose=self.verbose)
        logs.dispatch = self._service_dispatch(world, "logs", world.logs.handle, world.logs.endpoint_name)
        world.logs.endpoint = f"https://127.0.0.1:{logs.port}"
        self._add(logs, world.logs.endpoint)

        mda_cls = _load_mda_class()
        if mda_cls is not None:
            for tenant in self.options.mda_tenants:
                server = _Server(f"mda:{tenant}", context, verbose=self.verbose)
                api_url = f"https://127.0.0.1:{server.port}"
                service = mda_cls(
                    tenant,
                    world.directory.tenant_id,
                    world.issuer,
                    legacy_tokens={t: set(r) for t, r in world.legacy_tokens.items()},
                    rate_limit=self.options.rate_limit,
                    rate_window_s=self.options.rate_window,
                    api_url=api_url,
                    faults=world.faults,
                    counters=world.counters,
                    seed_alerts=self.options.seed_alerts,
                )
                world.mda[tenant] = service
                server.dispatch = service.handle
                if hasattr(service, "wants_stream") and hasattr(service, "handle_stream"):
                    server.streaming = service  # type: ignore[assignment]
                self._add_shared(server, api_url)
                self._add_graph(world, tenant, service, context)
        elif self.options.mda_tenants:
            print("simulator: localdev.simulator.mda not available; no MDA listeners", file=sys.stderr)

        for listener in self.listeners:
            if not listener.shared_loop:
                listener.thread.start()
        if self._mda_loop.servers:
            self._mda_loop.thread.start()
        info = self.describe()
        tmp = state_file.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.chmod(0o600)
        tmp.replace(state_file)
        return info

    def _add_graph(self, world: World, tenant: str, mda: MdaServiceLike, context: ssl.SSLContext) -> None:
        """The tenant's Microsoft Graph security API on its own port; its URL is a Graph token audience."""
        from localdev.simulator.directory import GRAPH_RESOURCE
        from localdev.simulator.graph import GraphService

        server = _Server(f"graph:{tenant}", context, verbose=self.verbose)
        graph_url = f"https://127.0.0.1:{server.port}"
        service = GraphService(
            tenant,
            world.directory.tenant_id,
            world.issuer,
            mda=mda,
            graph_url=graph_url,
            faults=world.faults,
            counters=world.counters,
        )
        world.graph[tenant] = service
        world.directory.aliases[graph_url] = GRAPH_RESOURCE
        server.dispatch = service.handle
        self._add_shared(server, graph_url)

    def stop(self) -> None:
        self._mda_loop.stop()
        own = [x for x in self.listeners if not x.shared_loop]
        stoppers = [threading.Thread(target=x.server.shutdown, daemon=True) for x in own]
        for stopper in stoppers:  # in parallel: each waits up to one poll interval
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for listener in self.listeners:
            listener.server.server_close()
        for listener in own:
            listener.thread.join(timeout=5)
        self.listeners.clear()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    def _add(self, server: _Server, url: str) -> None:
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"sim-{server.name}", daemon=True
        )
        self.listeners.append(Listener(server.name, server, thread, url))

    def _add_shared(self, server: _Server, url: str) -> None:
        """Per-tenant listeners (MDA, Graph) share one accept loop, so hundreds of tenants stay cheap."""
        self._mda_loop.servers.append(server)
        self.listeners.append(Listener(server.name, server, self._mda_loop.thread, url, True))

    def url(self, name: str) -> str:
        return next(x.url for x in self.listeners if x.name == name)

    # -- dispatch ------------------------------------------------------------------------------------

    @staticmethod
    def _service_dispatch(
        world: World, service: str, handler: Dispatch, endpoint: Callable[[SimRequest], str]
    ) -> Dispatch:
        def dispatch(req: SimRequest) -> SimResponse:
            world.counters.hit(service, endpoint(req))
            injected = world.faults.before(service, req)
            if injected is not None:
                return injected
            return handler(req)

        return dispatch

    def _main_dispatch(self, world: World, admin: AdminService) -> Dispatch:
        keyvault = self._service_dispatch(
            world, "keyvault", world.keyvault.handle, world.keyvault.endpoint_name
        )
        entra = self._service_dispatch(world, "entra", world.entra.handle, world.entra.endpoint_name)

        def dispatch(req: SimRequest) -> SimResponse:
            path = req.path
            if path == "/_admin" or path.startswith("/_admin/"):
                return admin.handle(req)
            if path.startswith(("/secrets", "/certificates")):
                return keyvault(req)
            return entra(req)

        return dispatch

    # -- description ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The simulator.json document (the contract in the helper brief, plus a few extra keys)."""
        world = self.world
        assert world is not None and self.pki is not None
        authority = self.url("main")
        mda = {
            name.removeprefix("mda:"): {
                "api_url": x.url,
                "tenant_id": world.directory.tenant_id,
                "graph_url": next((g.url for g in self.listeners if g.name == f"graph:{name[4:]}"), None),
            }
            for name, x in ((x.name, x) for x in self.listeners)
            if name.startswith("mda:")
        }
        return {
            "pid": os.getpid(),
            "authority_host": authority,
            "key_vault_url": authority,
            "admin_url": f"{authority}/_admin",
            "msi_endpoint": f"{self.url('msi')}/msi/token",
            "msi_header": world.msi_header,
            "ca_file": str(self.pki.ca_file),
            "bundle_file": str(self.pki.bundle_file),
            **world.describe(),
            "mda_tenants": mda,
            "logs_ingestion": world.logs.describe(),
            "options": {
                "token_lifetime": self.options.token_lifetime,
                "rate_limit": self.options.rate_limit,
                "rate_window": self.options.rate_window,
                "device_code_interval": self.options.device_code_interval,
                "device_code_lifetime": self.options.device_code_lifetime,
                "seed_alerts": self.options.seed_alerts,
            },
            "started_at": time.time(),
        }
