"""HTTP triggers on 127.0.0.1: route templates, methods, function-key auth, and func.HttpRequest/HttpResponse.

Keys: FUNCTION and ADMIN levels need the host's key in `x-functions-key` or `?code=`; missing or wrong gives
401 like Azure. Unmatched routes and methods give 404 (the host constrains routes by method).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from localdev.host.index import FunctionSpec
from localdev.host.invoke import Invoker
from localdev.host.outputs import BoundOutputs, StorageQueues

logger = logging.getLogger("localdev.host.http")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request size limit
_TOKEN = re.compile(r"\{(\*?)([A-Za-z_]\w*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
}


def compile_route(template: str) -> re.Pattern[str]:
    """`alerts/{id}`, `items/{id:int}`, `files/{name?}`, `blobs/{*path}` -> a regex with named groups."""
    pattern, position = "", 0
    for match in _TOKEN.finditer(template):
        literal = template[position : match.start()]
        catch_all, name, constraint, optional = match.groups()
        inner = ".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
        group = f"(?P<{name}>{inner})"
        if (optional or catch_all) and literal.endswith("/"):
            pattern += re.escape(literal[:-1]) + f"(?:/{group})?"
        else:
            pattern += re.escape(literal) + (f"{group}?" if optional else group)
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    spec: FunctionSpec
    pattern: re.Pattern[str]
    methods: frozenset[str]  # empty = any
    needs_key: bool
    outputs: BoundOutputs | None


def to_http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Map what an HTTP function returned to status, headers and body, as the worker does for `$return`."""
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers)
        if not any(k.lower() == "content-type" for k in headers) and result.mimetype:
            charset = f"; charset={result.charset}" if result.charset else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return result.status_code, headers, result.get_body() or b""
    if result is None:
        return 204, {}, b""
    if isinstance(result, bytes):
        return 200, {"Content-Type": "application/octet-stream"}, result
    if isinstance(result, str):
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, result.encode("utf-8")
    return 200, {"Content-Type": "application/json"}, json.dumps(result).encode("utf-8")


class HttpFrontend:
    def __init__(
        self,
        specs: Iterable[FunctionSpec],
        *,
        invoker: Invoker,
        function_key: str,
        route_prefix: str,
        queues: StorageQueues | None,
        port: int = 0,
    ) -> None:
        self.invoker = invoker
        self._key = function_key
        self.prefix = f"/{route_prefix}" if route_prefix else ""
        self.routes = [
            Route(
                spec,
                compile_route(spec.details["route"]),
                frozenset(spec.details["methods"]),
                spec.details["auth_level"] != "anonymous",
                queues.bind(spec) if queues is not None and spec.outputs else None,
            )
            for spec in specs
        ]
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="localhost-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path
        if not path.lower().startswith(self.prefix.lower() + "/"):
            return 404, {}, b""
        relative = path[len(self.prefix) + 1 :].strip("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        for route in self.routes:
            match = route.pattern.fullmatch(relative)
            if match is None or (route.methods and method not in route.methods):
                continue
            if route.needs_key and not self._key_ok(headers, query):
                return 401, {}, b""
            request = func.HttpRequest(
                method=method,
                url=f"http://127.0.0.1:{self.port}{target}",
                headers=headers,
                params=query,
                route_params={k: v for k, v in match.groupdict().items() if v is not None},
                body=body,
            )
            return self._invoke(route, request)
        return 404, {}, b""

    def _key_ok(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        supplied = lowered.get("x-functions-key") or query.get("code") or ""
        return hmac.compare_digest(supplied.encode(), self._key.encode())

    def _invoke(self, route: Route, request: func.HttpRequest) -> tuple[int, dict[str, str], bytes]:
        spec = route.spec
        arguments = route.outputs.arguments() if route.outputs else {}
        try:
            result = self.invoker.call(
                spec.name, spec.user_function, {spec.trigger_arg: request, **arguments}
            )
            if route.outputs:
                route.outputs.flush(arguments, result)
        except Exception:
            logger.exception("function %s failed", spec.name)
            return 500, {"Content-Type": "text/plain; charset=utf-8"}, b"Internal Server Error"
        return to_http_response(result)


def _handler_class(frontend: HttpFrontend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mcas-localhost"

        def _serve(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self._reply(411, {}, b"")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, {}, b"")
                return
            body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._reply(*frontend.dispatch(self.command, self.path, headers, body))

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            # The path only: `?code=` would put the function key in the log.
            logger.debug("%s %s", self.command, urlsplit(self.path).path)

    return Handler
