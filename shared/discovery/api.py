"""The two Cloud Discovery API calls, through the shared MDA client, with their errors made specific.

`upload_url` is idempotent (the client retries 429/5xx/network within the deadline). `done_upload` is not: the
client retries only 429 (refused before processing). Unknown data source and invalid source become terminal
errors whose message tells the operator what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shared.errors import TerminalError
from shared.mda.errors import BadRequestError, MalformedResponseError, NotFoundError

if TYPE_CHECKING:
    from shared.mda.client import MdaClient

UPLOAD_URL_PATH = "/api/v1/discovery/upload_url/"
DONE_UPLOAD_PATH = "/api/v1/discovery/done_upload/"
STREAMS_PATH = "/api/discovery/streams/"
NOT_FOUND_INPUT_STREAM = "CONSOLE_DISCOVERY_SETTINGS_PARSE_LOG_TASK_ERROR_NOT_FOUND_INPUT_STREAM"


class UnknownDataSource(TerminalError):
    """done_upload: the data source (inputStreamName) does not exist in the tenant."""


class InvalidSource(TerminalError):
    """upload_url refused the source type."""


@dataclass(frozen=True)
class UploadTarget:
    url: str  # exactly as returned: done_upload must get the same string
    provider: str


@runtime_checkable
class DataSourceLister(Protocol):
    """Optional for a `DiscoveryApi`: the tenant's data source names, to check one before sending bytes."""

    def data_sources(self, *, deadline: float | None) -> frozenset[str]: ...


class DiscoveryApi(Protocol):
    def clock(self) -> float: ...

    def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget: ...

    def done_upload(self, url: str, stream: str, snapshot: bool, *, deadline: float | None) -> Any: ...


class MdaDiscoveryApi:
    """`DiscoveryApi` over `shared.mda.client`."""

    def __init__(self, client: MdaClient) -> None:
        self._client = client

    @classmethod
    def for_profile(cls, profile: Any) -> MdaDiscoveryApi:
        from shared.mda.client import client_for

        return cls(client_for(profile))

    def clock(self) -> float:
        return self._client.clock()

    def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget:
        try:
            body = self._client.request(
                "GET",
                UPLOAD_URL_PATH,
                params={"filename": filename, "source": source},
                idempotent=True,
                deadline=deadline,
            )
        except (BadRequestError, NotFoundError) as exc:
            raise InvalidSource(
                f"upload_url refused source {source!r}: {exc.message}"
                + (f" [{exc.error_code}]" if exc.error_code else "")
            ) from exc
        url, provider = (body.get("url"), body.get("provider")) if isinstance(body, dict) else (None, None)
        if not isinstance(url, str) or not isinstance(provider, str):
            # A gateway page or a cut answer: transient, so the job is retried (bounded by the queue).
            raise MalformedResponseError(
                "upload_url answered without a JSON object holding url and provider strings",
                status=200,
                method="GET",
                path=UPLOAD_URL_PATH,
            )
        return UploadTarget(url=url, provider=provider)

    def data_sources(self, *, deadline: float | None) -> frozenset[str]:
        """Names of the tenant's data sources (`GET /api/discovery/streams/`, no `v1`), views and one-off
        snapshot reports excluded (streamType 3 and 5)."""
        body = self._client.request("GET", STREAMS_PATH, idempotent=True, deadline=deadline)
        streams = body.get("streams") if isinstance(body, dict) else body
        if not isinstance(streams, list):
            raise MalformedResponseError(
                "the streams answer holds no streams list", status=200, method="GET", path=STREAMS_PATH
            )
        return frozenset(
            str(s["displayName"])
            for s in streams
            if isinstance(s, dict)
            and isinstance(s.get("displayName"), str)
            and s.get("streamType") not in (3, 5)
        )

    def done_upload(self, url: str, stream: str, snapshot: bool, *, deadline: float | None) -> Any:
        # The report is a snapshot when `uploadAsSnapshot` is *set* (learn.microsoft.com/defender-cloud-apps/
        # api-discovery-finalize-upload); the documented examples omit it for a data source, so send it only
        # for snapshots.
        payload: dict[str, Any] = {"uploadUrl": url, "inputStreamName": stream}
        if snapshot:
            payload["uploadAsSnapshot"] = True
        try:
            return self._client.request(
                "POST", DONE_UPLOAD_PATH, json=payload, idempotent=False, deadline=deadline
            )
        except BadRequestError as exc:
            if exc.error_code == NOT_FOUND_INPUT_STREAM or NOT_FOUND_INPUT_STREAM in (exc.message or ""):
                raise UnknownDataSource(
                    f"unknown data source {stream!r}: create it in the portal (Settings > Cloud Apps > Cloud "
                    "Discovery > Automatic log upload > Data sources) or upload as a snapshot "
                    f"[{NOT_FOUND_INPUT_STREAM}]"
                ) from exc
            raise
