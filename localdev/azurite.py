"""Start and stop Azurite (blob, queue, table) for tests, the demo and `mcasctl host`.

Runs the project's own `node_modules/.bin/azurite` (pinned in package.json; never npx, never a global install)
in memory on 127.0.0.1. Ports are chosen by the OS (port 0) and read back from Azurite's start-up lines, so
parallel runs never collide; `restart()` reuses the same ports so clients built from the connection string
keep working across a simulated storage outage.

In memory, a restart loses every blob, queue message and table row - unlike Azure Storage, whose outages
lose nothing. `persistent=True` keeps the data on disk in the handle's work directory instead, so a restart
is an outage only (chaos tests use it to check that nothing the app stored is lost).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from shared.errors import ConfigurationError, McasError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"

ACCOUNT_NAME = "devstoreaccount1"
# The emulator's published, well-known development key: not a secret (it only opens the local emulator).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"
SERVICES = ("blob", "queue", "table")

_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:\s]+:(\d+)"
)


class AzuriteError(McasError):
    """Azurite could not be started (missing install, early exit, or no ports in time)."""


@dataclass(frozen=True)
class AzuritePorts:
    blob: int
    queue: int
    table: int


def connection_string(ports: AzuritePorts, host: str = HOST) -> str:
    """Explicit endpoints (not `UseDevelopmentStorage=true`, which means the fixed default ports)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{ports.blob}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{host}:{ports.queue}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{host}:{ports.table}/{ACCOUNT_NAME};"
    )


def azurite_binary() -> Path:
    """The project-local Azurite, with a one-line hint when `npm install` has not run."""
    if not AZURITE_BIN.exists():
        raise ConfigurationError(
            "node_modules/.bin/azurite",
            "is missing: run `make setup` (or `npm ci`) in the project root to install Azurite locally",
        )
    return AZURITE_BIN


class AzuriteHandle:
    """One Azurite process; use as a context manager or call start()/stop().

    `extent_memory_limit_mb` caps Azurite's in-memory blob store (it keeps memory after blobs are deleted).
    """

    def __init__(
        self,
        *,
        extent_memory_limit_mb: int | None = None,
        startup_timeout: float = 20.0,
        persistent: bool = False,
    ) -> None:
        self.extent_memory_limit_mb = extent_memory_limit_mb
        self.startup_timeout = startup_timeout
        self.persistent = persistent  # on disk (survives restart()) instead of in memory
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._ports: AzuritePorts | None = None

    # -- public handle -------------------------------------------------------------------------------------
    @property
    def ports(self) -> AzuritePorts:
        if self._ports is None:
            raise AzuriteError("Azurite has not been started")
        return self._ports

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.blob}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.queue}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports.table}/{ACCOUNT_NAME}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> AzuriteHandle:
        if self.running:
            return self
        if self._workdir is None:
            # Its own directory: the data when persistent, and so nothing ever lands in the repo.
            self._workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        self._spawn(self._ports)
        return self

    def stop(self) -> None:
        self._terminate()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def restart(self, *, downtime_s: float = 0.0) -> None:
        """Stop and start again on the same ports (in memory, all data is lost; persistent, none is), after
        `downtime_s` seconds with nothing listening (an outage longer than the restart itself)."""
        ports = self.ports
        self._terminate()
        if downtime_s > 0:
            time.sleep(downtime_s)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                self._spawn(ports)
                return
            except AzuriteError:
                # The old sockets may linger for a moment; retry until the deadline.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __enter__(self) -> AzuriteHandle:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------------------
    def _command(self, ports: AzuritePorts | None) -> list[str]:
        wanted = ports or AzuritePorts(0, 0, 0)
        assert self._workdir is not None
        command = [str(azurite_binary()), "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        if self.persistent:
            command += ["--location", str(self._workdir / "data")]
        else:
            command.append("--inMemoryPersistence")
        for service in SERVICES:
            command += [f"--{service}Host", HOST, f"--{service}Port", str(getattr(wanted, service))]
        if self.extent_memory_limit_mb is not None and not self.persistent:
            command += ["--extentMemoryLimit", str(self.extent_memory_limit_mb)]
        return command

    def _spawn(self, ports: AzuritePorts | None) -> None:
        assert self._workdir is not None
        log_path = self._workdir / "azurite.log"
        with log_path.open("wb") as log:
            # Output goes to a file, not a pipe, so a chatty Azurite can never block on a full pipe.
            self._proc = subprocess.Popen(
                self._command(ports),
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Custom accounts would replace the well-known key the connection string relies on.
                env={k: v for k, v in os.environ.items() if k != "AZURITE_ACCOUNTS"},
            )
        try:
            self._ports = self._wait_ready(log_path)
        except BaseException:
            self._terminate()
            raise

    def _wait_ready(self, log_path: Path) -> AzuritePorts:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            text = log_path.read_text(errors="replace")
            found = {name.lower(): int(port) for name, port in _LISTENING.findall(text)}
            if len(found) == len(SERVICES):
                return AzuritePorts(**found)
            if self._proc.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:])
                raise AzuriteError(
                    f"Azurite exited with code {self._proc.returncode} during start-up: {tail}"
                )
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite did not report its ports within {self.startup_timeout:.0f} s")
            time.sleep(0.02)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_azurite(*, extent_memory_limit_mb: int | None = None) -> AzuriteHandle:
    """Start Azurite on free loopback ports and return the running handle (call `.stop()` when done)."""
    return AzuriteHandle(extent_memory_limit_mb=extent_memory_limit_mb).start()
