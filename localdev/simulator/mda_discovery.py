"""Cloud Discovery part of the simulated Defender for Cloud Apps API (https://learn.microsoft.com/defender-cloud-apps/api-discovery).

The three-call upload flow is where clients go wrong (gotcha 7, §9), so the simulator is strict where the
service is:
- `upload_url` validates `source` against the logType names and issues a URL per upload. Provider `azure`
  gets a SAS URL — into Azurite when an endpoint is configured, otherwise a blob served by the simulator
  itself on the tenant port (`/blob/uploads/<id>?...&sig=...`, see mda_storage.py). Provider `aws` gets a
  presigned-style `/s3/<bucket>/<key>?X-Amz-...` URL.
- `done_upload` only accepts an issued, unfinalised `uploadUrl`; the data source must exist unless
  `uploadAsSnapshot`; the blob must exist, be non-empty and not start with a UTF-8 BOM. Azurite-backed
  blobs are read back through Azurite's HTTP API.
- Streams (`GET /api/discovery/streams/`) start with the built-in "Global View" plus two data sources,
  "paloalto-hq" (PALO_ALTO) and "zscaler-cloud" (ZSCALER); admin can add more. A snapshot upload adds a
  one-off report (streamType 5) named after `inputStreamName`.

UNCONFIRMED shapes chosen here (§10): success `{"success": true, "inputStreamId": "<24 hex>"}`; other 400s
carry `{"detail": ...}` only (the one documented `errorMessageCode` is used for the unknown data source).

Behaviour the documentation does not describe, chosen here to be strict (the app must not rely on any of it
to decide that an upload is finished or terminal; it strips a BOM itself and treats any refusal after an
ambiguous `done_upload` as "outcome unknown"):
- a second `done_upload` for the same URL is refused with 400;
- a file starting with a UTF-8 BOM is refused at `done_upload` with 400;
- `uploadAsSnapshot` is read as a boolean (the docs say the report is a snapshot when it is *set*; clients
  send it only for snapshots). The keys each call sent are recorded in `finished[...]["keys"]`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from localdev.simulator.mda_common import ApiError, as_bool, as_int, bad_request
from localdev.simulator.mda_storage import SAS_LIFETIME_S, BodyReader, DiscoveryConfig, Upload, UploadTargets
from localdev.simulator.seed import iso_ms
from localdev.simulator.wire import SimRequest, SimResponse

UTF8_BOM = b"\xef\xbb\xbf"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key: not a secret, it only opens the local emulator.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONTAINER = "mda-discovery-uploads"
AZURITE_API_VERSION = "2025-11-05"  # accepted by Azurite 3.35 even without --skipApiVersionCheck
NOT_FOUND_INPUT_STREAM = "CONSOLE_DISCOVERY_SETTINGS_PARSE_LOG_TASK_ERROR_NOT_FOUND_INPUT_STREAM"

# Numeric logType ids (https://learn.microsoft.com/defender-cloud-apps/api-discovery-list-streams); the
# MICROSFOT misspellings are verbatim.
# fmt: off
LOG_TYPES: dict[int, str] = {
    0: "INVALID", 1: "OTHER", 100: "LOG_3COM", 101: "BARRACUDA", 102: "BLUECOAT", 103: "CHECKPOINT",
    104: "CISCO_ASA", 105: "CISCO_SSL_WEBVPN_OR_SVC_VPN", 106: "CISCO_IRONPORT_PROXY", 107: "CISCO_NETFLOW",
    108: "FORTIGATE", 109: "JUNIPER_NETWORKS", 110: "GREENPLUM", 111: "MICROSFOT_ISA", 112: "PALO_ALTO",
    113: "SONICWALL", 114: "SQUID", 115: "SUN_MICROSYSTEMS_SUNSCREEN_FIREWALL", 116: "SURICATA",
    117: "SYMANTEC_WEB_SECURITY_CLOUD", 118: "WEBSENSE", 119: "WATCH_GUARD", 120: "ZSCALER",
    121: "MCAFEE_SWG", 122: "HP_TIPPING_POINT", 123: "HP_NETWORKING", 124: "CISCO_SCAN_SAFE",
    125: "CHECKPOINT_OPSEC_LEA", 126: "PALO_ALTO_SYSLOG", 127: "METADATA_ACTIVE_DIRECTORY_LOGIN",
    128: "COX_SYSLOG", 129: "JUNIPER_SRX", 130: "SOPHOS_SG", 131: "METADATA_HPE_LOGIN",
    132: "METADATA_CISCO_ISE", 133: "CISCO_IRONPORT_PROXY_SYSLOG", 134: "ZSCALER_NESTLE",
    135: "WEBSENSE_V7_5", 136: "FORTIGATE_SYSLOG", 137: "PAN_DELOITTE", 138: "WEBSENSE_SIEM_CEF",
    139: "BLUECOAT_SYSLOG", 140: "CHECKPOINT_SYSLOG", 141: "CISCO_ASA_SYSLOG",
    142: "CISCO_SCAN_SAFE_SYSLOG", 143: "ZSCALER_SYSLOG", 144: "MCAFEE_SWG_SYSLOG",
    145: "CHECKPOINT_OPSEC_LEA_SYSLOG", 146: "SQUID_SYSLOG", 147: "JUNIPER_SRX_SYSLOG",
    148: "SOPHOS_SG_SYSLOG", 149: "MICROSFOT_ISA_SYSLOG", 150: "WEBSENSE_SYSLOG",
    151: "WEBSENSE_V7_5_SYSLOG", 152: "WEBSENSE_SIEM_CEF_SYSLOG", 153: "MACHINE_ZONE_MERAKI",
    154: "MACHINE_ZONE_MERAKI_SYSLOG", 155: "SQUID_NATIVE", 156: "SQUID_NATIVE_SYSLOG", 157: "CISCO_FWSM",
    158: "CISCO_FWSM_SYSLOG", 159: "MICROSOFT_ISA_W3C", 160: "SONICWALL_SYSLOG",
    161: "MICROSOFT_ISA_W3C_SYSLOG", 162: "SOPHOS_CYBEROAM", 163: "SOPHOS_CYBEROAM_SYSLOG",
    164: "CLAVISTER", 165: "CLAVISTER_SYSLOG", 166: "BARRACUDA_SYSLOG", 167: "CUSTOM_PARSER",
    168: "JUNIPER_SSG", 169: "JUNIPER_SSG_SYSLOG", 170: "ZSCALER_QRADAR", 171: "ZSCALER_QRADAR_SYSLOG",
    172: "JUNIPER_SRX_SD", 173: "JUNIPER_SRX_SD_SYSLOG", 174: "JUNIPER_SRX_WELF",
    175: "JUNIPER_SRX_WELF_SYSLOG", 176: "ADALLOM_PROXY_RAW_TRAFFIC", 177: "CISCO_ASA_FIREPOWER",
    178: "CISCO_ASA_FIREPOWER_SYSLOG", 179: "GENERIC_CEF", 180: "GENERIC_CEF_SYSLOG", 181: "GENERIC_LEEF",
    182: "GENERIC_LEEF_SYSLOG", 183: "GENERIC_W3C", 184: "GENERIC_W3C_SYSLOG", 185: "I_FILTER",
    186: "I_FILTER_SYSLOG", 187: "CHECKPOINT_XML", 188: "CHECKPOINT_XML_SYSLOG",
    189: "CHECKPOINT_SMART_VIEW_TRACKER", 190: "CHECKPOINT_SMART_VIEW_TRACKER_SYSLOG",
    191: "BARRACUDA_NEXT_GEN_FW", 192: "BARRACUDA_NEXT_GEN_FW_SYSLOG", 193: "BARRACUDA_NEXT_GEN_FW_WEBLOG",
    194: "BARRACUDA_NEXT_GEN_FW_WEBLOG_SYSLOG", 195: "WDATP", 196: "ZSCALER_CEF", 197: "ZSCALER_CEF_SYSLOG",
    198: "SOPHOS_XG", 199: "SOPHOS_XG_SYSLOG", 200: "IBOSS", 201: "IBOSS_SYSLOG", 202: "FORCEPOINT",
    203: "FORCEPOINT_SYSLOG", 204: "FORTIOS", 205: "FORTIOS_SYSLOG", 206: "CISCO_IRONPORT_WSA_II",
    207: "CISCO_IRONPORT_WSA_II_SYSLOG", 208: "PALO_ALTO_LEEF", 209: "PALO_ALTO_LEEF_SYSLOG",
    210: "FORCEPOINT_LEEF", 211: "FORCEPOINT_LEEF_SYSLOG", 212: "STORMSHIELD", 213: "STORMSHIELD_SYSLOG",
    214: "CONTENTKEEPER", 215: "CONTENTKEEPER_SYSLOG", 216: "CISCO_IRONPORT_WSA_III",
    217: "CISCO_IRONPORT_WSA_III_SYSLOG", 218: "CHECKPOINT_CEF", 219: "CHECKPOINT_CEF_SYSLOG",
    220: "CORRATA", 221: "CORRATA_SYSLOG", 222: "CISCO_FIREPOWER_V6", 223: "CISCO_FIREPOWER_V6_SYSLOG",
    224: "MENLO_SECURITY_CEF", 225: "WATCHGUARD_XTM", 226: "WATCHGUARD_XTM_SYSLOG",
}
# fmt: on
LOG_TYPE_IDS: dict[str, int] = {name: i for i, name in LOG_TYPES.items()}
# `upload_url` accepts any name of the table (the docs' list of 71 lags the service, §7.2) plus the two
# documented source names that have no logType row.
SOURCE_NAMES: frozenset[str] = frozenset(
    {n for n in LOG_TYPES.values() if n != "INVALID"} | {"OPEN_SYSTEMS_SECURE_WEB_GATEWAY", "WANDERA_SYSLOG"}
)
BLOCK_SCRIPT_FORMATS: dict[int, str] = {
    102: "BLUECOAT",
    104: "CISCO_ASA",
    108: "FORTIGATE",
    112: "PALO_ALTO",
    120: "ZSCALER",
    129: "JUNIPER_SRX",
    135: "WEBSENSE_V7_5",
}
BANNED_DOMAINS = (
    "angieslist.com",
    "wetransfer.com",
    "mega.nz",
    "zippyshare.com",
    "sendspace.com",
    "anonfiles.com",
    "pastebin.com",
    "4shared.com",
)
ALLOWED_DOMAINS = (
    "office.com",
    "sharepoint.com",
    "onedrive.live.com",
    "outlook.office365.com",
    "teams.microsoft.com",
    "salesforce.com",
    "force.com",
    "box.com",
    "slack.com",
    "zoom.us",
    "github.com",
    "atlassian.net",
    "okta.com",
    "servicenow.com",
    "workday.com",
    "docusign.net",
    "adobe.com",
    "dropbox.com",
    "google.com",
    "amazonaws.com",
    "azure.com",
    "webex.com",
    "zendesk.com",
    "hubspot.com",
    "monday.com",
)


def _object_id() -> str:
    return secrets.token_hex(12)


def _safe_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].strip("._")
    return cleaned or "upload.log"


def new_stream(
    display_name: str,
    log_type: int,
    *,
    now_ms: int,
    stream_type: int = 1,
    receiver_type: str = "ftp",
    protocol: str | None = None,
    anonymize_users: bool = False,
    global_aggregated: bool = False,
    is_manual: bool = True,
) -> dict[str, Any]:
    """A stream / data source object shaped like the docs' example (https://learn.microsoft.com/defender-cloud-apps/api-discovery-list-streams)."""
    stamp = iso_ms(now_ms)
    stream: dict[str, Any] = {
        "_id": _object_id(),
        "anonymizeUsers": anonymize_users,
        "displayName": display_name,
        "logType": log_type,
        "receiverType": receiver_type,
        "streamType": stream_type,
        "isManual": is_manual,
        "created": stamp,
        "lastModified": stamp,
        "logFilesHistoryCount": 0,
        "supportedEntityTypes": [1, 2],
        "supportedTrafficTypes": [1, 2, 3],
        "lastAlertProcessingTime": now_ms,
        "logFilesFailsCount": 0,
        "currentServicesCollectionName": "discovery_services",
        "globalAggregated": global_aggregated,
        "readTimeFramesFromSecond": True,
        "timeFrames2": {},
        "validTimeFrames2": [],
        "timeFrames": {},
        "validTimeFrames": [],
        "timeWithoutLogs": 0,
        "sourceStreams": [],
    }
    if protocol:
        stream["protocol"] = protocol
    return stream


def azurite_sas_url(endpoint: str, container: str, blob_name: str, *, expires: float) -> str:
    """A SAS URL that may create, write and read one blob in Azurite (its well-known development account)
    until `expires` (epoch seconds): what `upload_url` hands out with an Azurite endpoint configured."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    sas = generate_blob_sas(
        AZURITE_ACCOUNT,
        container,
        blob_name,
        account_key=AZURITE_KEY,
        permission=BlobSasPermissions(create=True, write=True, read=True),
        expiry=dt.datetime.fromtimestamp(expires, dt.UTC),
    )
    return f"{endpoint}/{container}/{blob_name}?{sas}"


def block_script_text(fmt: int, domains: tuple[str, ...], *, banned: bool) -> str:
    """Plain text in roughly the appliance's own syntax (the BlueCoat and Zscaler shapes are documented)."""
    verb = "deny" if banned else "allow"
    kind = "banned" if banned else "allowed"
    if fmt == 102:
        return "".join(f"url.domain={d} {verb}\n" for d in domains)
    if fmt == 120:
        return "".join(f".{d}\n" for d in domains)
    if fmt == 104:
        lines = [f'regex mcas_{kind}_{i} "\\.{re.escape(d)}"' for i, d in enumerate(domains, 1)]
        lines.append(f"class-map type regex match-any mcas_{kind}")
        lines += [f" match regex mcas_{kind}_{i}" for i in range(1, len(domains) + 1)]
        return "\n".join(lines) + "\n"
    if fmt == 108:
        entries = "".join(
            f'      edit {i}\n        set url "{d}"\n        set type wildcard\n'
            f"        set action {'block' if banned else 'allow'}\n      next\n"
            for i, d in enumerate(domains, 1)
        )
        return (
            f'config webfilter urlfilter\n  edit 1\n    set name "mcas_{kind}"\n    config entries\n'
            f"{entries}    end\n  next\nend\n"
        )
    if fmt == 112:
        return "".join(f"{d}/\n*.{d}/\n" for d in domains)
    if fmt == 129:
        values = " ".join(f'"*.{d}"' for d in domains)
        return f"set security utm custom-objects url-pattern mcas-{kind} value [ {values} ]\n"
    return "".join(f"http://{d}\n" for d in domains)  # 135 Websense


# -- the service ---------------------------------------------------------------------------------------------


class DiscoveryService:
    """One tenant's discovery state: config, issued uploads, stored objects, streams and finished uploads."""

    def __init__(self, *, tenant_name: str, api_url: str, clock: Callable[[], float]) -> None:
        """`api_url` is the tenant port's base URL; self-served upload URLs point at it."""
        self.tenant_name = tenant_name
        self._clock = clock
        bucket = re.sub(r"[^a-z0-9-]", "-", tenant_name.lower()).strip("-") or "tenant"
        self.targets = UploadTargets(api_url=api_url, bucket=f"mda-discovery-{bucket}"[:63], clock=clock)
        self._lock = self.targets.lock
        self.uploads = self.targets.uploads
        self._by_url: dict[str, str] = {}
        self.finished: list[dict[str, Any]] = []
        now_ms = int(clock() * 1000)
        self.streams: list[dict[str, Any]] = [
            new_stream(
                "Global View",
                1,
                now_ms=now_ms,
                stream_type=3,
                receiver_type="syslog",
                global_aggregated=True,
                is_manual=False,
            ),
            new_stream("paloalto-hq", LOG_TYPE_IDS["PALO_ALTO"], now_ms=now_ms),
            new_stream(
                "zscaler-cloud",
                LOG_TYPE_IDS["ZSCALER"],
                now_ms=now_ms,
                receiver_type="syslog",
                protocol="TCP",
            ),
        ]

    # -- admin -----------------------------------------------------------------------------------------------

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        unknown = set(spec) - {"provider", "azurite_blob_endpoint", "single_put_limit", "max_file_size"}
        if unknown:
            raise bad_request(f"unknown discovery config keys {sorted(unknown)}")
        with self._lock:
            cfg = self.targets.config
            provider = spec.get("provider", cfg.provider)
            if provider not in ("azure", "aws"):
                raise bad_request("provider must be 'azure' or 'aws'")
            endpoint = spec.get("azurite_blob_endpoint", cfg.azurite_blob_endpoint)
            if endpoint is not None:
                parts = urlsplit(str(endpoint))
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise bad_request(
                        "azurite_blob_endpoint must be like http://127.0.0.1:PORT/devstoreaccount1"
                    )
                endpoint = str(endpoint).rstrip("/")
            single = as_int(spec.get("single_put_limit"), "single_put_limit", default=cfg.single_put_limit)
            biggest = as_int(spec.get("max_file_size"), "max_file_size", default=cfg.max_file_size)
            assert single is not None and biggest is not None
            if single < 1 or biggest < 1:
                raise bad_request("limits must be positive")
            if endpoint and endpoint != cfg.azurite_blob_endpoint:
                self._ensure_container(endpoint)
            self.targets.config = DiscoveryConfig(provider, endpoint, single, biggest)
            return self.targets.config.public()

    def reset_config(self) -> None:
        with self._lock:
            self.targets.config = DiscoveryConfig()

    def add_stream(self, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec.get("displayName") or spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("displayName is required")
        log_type_raw = spec.get("logType", "GENERIC_CEF")
        if isinstance(log_type_raw, str) and log_type_raw in LOG_TYPE_IDS:
            log_type = LOG_TYPE_IDS[log_type_raw]
        else:
            parsed = as_int(log_type_raw, "logType")
            if parsed not in LOG_TYPES:
                raise bad_request(f"unknown logType {log_type_raw!r}")
            log_type = parsed
        receiver = str(spec.get("receiverType", "ftp"))
        with self._lock:
            if any(s["displayName"] == name and s["streamType"] == 1 for s in self.streams):
                raise ApiError(409, {"detail": f"A data source named {name!r} already exists"})
            stream = new_stream(
                name,
                log_type,
                now_ms=self._now_ms(),
                receiver_type=receiver,
                protocol=spec.get("protocol"),
                anonymize_users=as_bool(spec.get("anonymizeUsers"), "anonymizeUsers"),
            )
            self.streams.append(stream)
            return dict(stream)

    def uploads_report(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(u) for u in self.finished]

    # -- API -------------------------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        source = params.get("source")
        if not isinstance(filename, str) or not filename.strip():
            raise bad_request("filename is required")
        if not isinstance(source, str) or not source:
            raise bad_request("source is required (a log format name such as PALO_ALTO or ZSCALER)")
        if source not in SOURCE_NAMES:
            raise bad_request(
                f"Invalid source {source!r}: not a known log format name (see the logType table); "
                "names are upper case, e.g. CISCO_ASA_SYSLOG"
            )
        with self._lock:
            cfg = self.targets.config
            upload_id = str(uuid.uuid4())
            expires = self._clock() + SAS_LIFETIME_S
            safe = _safe_filename(filename)
            if cfg.provider == "aws":
                key = f"{upload_id}/{safe}"
                url = self.targets.s3_url(key, expires)
                upload = Upload(upload_id, url, "aws", "simulator", filename, source, expires, key=key)
            elif cfg.azurite_blob_endpoint:
                url = self._azurite_url(cfg.azurite_blob_endpoint, f"{upload_id}/{safe}", expires)
                upload = Upload(upload_id, url, "azure", "azurite", filename, source, expires)
            else:
                url = self.targets.blob_url(upload_id, expires)
                upload = Upload(upload_id, url, "azure", "simulator", filename, source, expires)
            self.uploads[upload_id] = upload
            self._by_url[url] = upload_id
            return {"url": url, "provider": upload.provider}

    def done_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        url = params.get("uploadUrl")
        stream_name = params.get("inputStreamName")
        snapshot = as_bool(params.get("uploadAsSnapshot"), "uploadAsSnapshot")
        if not isinstance(url, str) or not url:
            raise bad_request("uploadUrl is required")
        if not isinstance(stream_name, str) or not stream_name.strip():
            raise bad_request("inputStreamName is required")
        with self._lock:
            upload_id = self._by_url.get(url)
            upload = self.uploads.get(upload_id) if upload_id else None
            if upload is None:
                raise bad_request(
                    "Invalid uploadUrl: it was not issued by upload_url for this tenant "
                    "(pass the exact URL returned)"
                )
            if upload.finalized:  # undocumented: the real service's answer to a repeat is unknown
                raise bad_request("This upload was already processed; request a new upload_url")
            stream = next(
                (s for s in self.streams if s["displayName"] == stream_name and s["streamType"] == 1), None
            )
            if stream is None and not snapshot:
                raise bad_request(
                    f"Data source {stream_name!r} was not found", errorMessageCode=NOT_FOUND_INPUT_STREAM
                )
            if upload.backend == "azurite":
                size, sha256, head = self._azurite_blob_facts(upload)
            else:
                if upload.blob is None:
                    raise bad_request("The uploaded file was not found: PUT the file to the upload URL first")
                size, sha256, head = upload.blob.size, upload.blob.sha256, upload.blob.head
            if size == 0:
                raise bad_request("The uploaded file is empty")
            if head.startswith(UTF8_BOM):  # undocumented refusal: Cloud Discovery may just fail to parse
                raise bad_request(
                    "The uploaded file starts with a UTF-8 byte order mark (BOM); remove it and upload again"
                )
            now_ms = self._now_ms()
            if stream is None or snapshot:
                report = new_stream(
                    stream_name,
                    LOG_TYPE_IDS.get(upload.source, 1),
                    now_ms=now_ms,
                    stream_type=5,
                    receiver_type="ftp",
                )
                report["snapshotData"] = {"fileName": upload.filename, "source": upload.source}
                report["logFilesHistoryCount"] = 1
                report["lastDataReceived"] = iso_ms(now_ms)
                self.streams.append(report)
                stream_id = report["_id"]
            else:
                stream["logFilesHistoryCount"] += 1
                stream["lastDataReceived"] = stream["lastModified"] = iso_ms(now_ms)
                stream_id = stream["_id"]
            upload.finalized = True
            self.finished.append(
                {
                    "upload_id": upload.upload_id,
                    "inputStreamId": stream_id,
                    "stream": stream_name,
                    "snapshot": snapshot,
                    "size": size,
                    "sha256": sha256,
                    "source": upload.source,
                    "filename": upload.filename,
                    "provider": upload.provider,
                    "backend": upload.backend,
                    "finished_at": iso_ms(now_ms),
                    "keys": sorted(str(k) for k in params),
                }
            )
            return {"success": True, "inputStreamId": stream_id}

    def list_streams(self) -> dict[str, Any]:
        with self._lock:
            return {"streams": [dict(s) for s in self.streams]}

    def block_script(self, params: dict[str, Any]) -> SimResponse:
        kind = str(params.get("type") or "banned")
        if kind not in ("banned", "allowed"):
            raise bad_request("type must be 'banned' or 'allowed'")
        domains = BANNED_DOMAINS if kind == "banned" else ALLOWED_DOMAINS
        fmt_raw = params.get("format")
        if fmt_raw in (None, ""):
            # NS-CTE's JSON form without `format` (UNCONFIRMED by docs): pages of domain lists.
            skip = as_int(params.get("skip"), "skip", default=0) or 0
            limit = as_int(params.get("limit"), "limit", default=50) or 50
            page = list(domains[skip : skip + limit])
            return SimResponse.json(
                200, {"data": [{"domainList": page}] if page else [], "hasNext": skip + limit < len(domains)}
            )
        fmt = as_int(fmt_raw, "format")
        if fmt not in BLOCK_SCRIPT_FORMATS:
            raise bad_request(f"Unsupported format {fmt_raw!r}; supported: {sorted(BLOCK_SCRIPT_FORMATS)}")
        return SimResponse.text(200, block_script_text(fmt, domains, banned=kind == "banned"))

    # -- URLs and signatures ---------------------------------------------------------------------------------

    def _azurite_url(self, endpoint: str, blob_name: str, expires: float) -> str:
        self._ensure_container(endpoint)
        return azurite_sas_url(endpoint, AZURITE_CONTAINER, blob_name, expires=expires)

    @staticmethod
    def _ensure_container(endpoint: str) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient(
            endpoint,
            credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
            api_version=AZURITE_API_VERSION,
            retry_total=1,
        )
        try:
            client.create_container(AZURITE_CONTAINER)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise bad_request(f"Azurite at {endpoint} is not reachable: {type(exc).__name__}") from None

    def _azurite_blob_facts(self, upload: Upload) -> tuple[int, str, bytes]:
        """Read the uploaded blob back from Azurite (size, sha256, first bytes) through its HTTP API."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError
        from azure.storage.blob import BlobClient

        client = BlobClient.from_blob_url(upload.url, api_version=AZURITE_API_VERSION, retry_total=1)
        try:
            downloader = client.download_blob()
            sha = hashlib.sha256()
            head = b""
            size = 0
            for chunk in downloader.chunks():
                sha.update(chunk)
                if len(head) < 8:
                    head = (head + chunk)[:8]
                size += len(chunk)
        except ResourceNotFoundError:
            raise bad_request(
                "The uploaded file was not found: PUT the file to the upload URL first"
            ) from None
        except AzureError as exc:
            raise ApiError(502, {"detail": f"Upload storage unavailable: {type(exc).__name__}"}) from None
        return size, sha.hexdigest(), head

    # -- upload targets --------------------------------------------------------------------------------------

    @property
    def config(self) -> DiscoveryConfig:
        return self.targets.config

    @staticmethod
    def storage_kind(path: str) -> str | None:
        """ "blob" / "s3" for the upload-target paths served on the tenant port, else None."""
        return UploadTargets.storage_kind(path)

    def handle_storage(self, req: SimRequest, body: BodyReader) -> SimResponse:
        return self.targets.handle(req, body)
