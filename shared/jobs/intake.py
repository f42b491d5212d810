"""POST /api/jobs and GET /api/jobs/{id}: authenticate, validate, record, enqueue - answer 202 fast.

Request checks, in this order (cheap and unauthenticated-safe first):
1. correlation id header (`X-Correlation-ID`, else `X-Request-ID`, else a new one) - echoed on every answer;
2. body size (1 MiB) -> 413;
3. authentication: `Authorization: Bearer` (Entra ID; it decides when present) or Standard Webhooks
   headers -> 401 / 403 / 503;
4. `Content-Type: application/json` -> 415; JSON -> 400; schema -> 400 with `fieldErrors`;
5. authorization of the job for this caller (tenant scope, context) -> 403;
6. `Idempotency-Key` -> the same job (202 again) or 422 if reused with another body;
7. job record (Table) + queue message (job id and correlation id only) -> 202 with `Location`.
Nothing a caller sends can produce a 500: every failure is mapped, and storage or Key Vault outages answer
503.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared import standard_webhooks as sw
from shared.caches import register_cache_reset
from shared.errors import ConfigurationError, TransientError, ValidationError
from shared.jobs.bearer import BearerValidator
from shared.jobs.claims import IdempotencyStore
from shared.jobs.config import IDEMPOTENCY_TTL_S, MAX_BODY_BYTES, JobsConfig
from shared.jobs.http import ApiRequest, ApiResponse, error_response, json_response
from shared.jobs.principal import AuthFailure, AuthUnavailable, Principal
from shared.jobs.schema import (
    ACTION_DISCOVERY_UPLOAD,
    DuplicateKey,
    JobSpec,
    ValidationContext,
    unique_keys,
    validate_job,
)
from shared.jobs.sealing import seal
from shared.jobs.signature import SignatureAuthenticator, status_payload
from shared.jobs.store import JobConflict, JobRecord, JobStore
from shared.jobs.views import job_view
from shared.log_context import bind, log_context
from shared.timeparse import iso

log = logging.getLogger(__name__)

MESSAGE_VERSION = 1
_CORRELATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_JSON_TYPES = ("application/json",)


class Reject(Exception):
    """An answer decided early (4xx); carries everything the response needs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field_errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field_errors = field_errors
        self.headers = headers or {}
        super().__init__(message)


@dataclass
class JobsApi:
    """The jobs API over its collaborators (real ones from `default_api()`, fakes in unit tests)."""

    config: JobsConfig
    jobs: JobStore
    idempotency: IdempotencyStore
    enqueue: Callable[[str], None]
    signature: SignatureAuthenticator
    bearer: BearerValidator | None
    sealing_key: Callable[[], bytes]
    validation: Callable[[], ValidationContext]
    now: Callable[[], float] = time.time
    new_id: Callable[[], str] = lambda: str(uuid.uuid4())

    # -- POST /api/jobs ----------------------------------------------------------------------------------

    def submit(self, request: ApiRequest) -> ApiResponse:
        correlation_id = _correlation_id(request)
        with log_context(correlation_id=correlation_id):
            return _answer(lambda: self._submit(request, correlation_id), correlation_id, self._challenge())

    def _submit(self, request: ApiRequest, correlation_id: str) -> ApiResponse:
        _check_size(request)
        principal = self._authenticate(request, signed_payload=request.body)
        _check_content_type(request)
        body = _parse_json(request.body)
        spec = validate_job(body, self.validation())
        self._authorize(principal, spec)
        key = _idempotency_key(request)
        job_id = self.new_id()
        bind(job_id=job_id)
        if key is not None:
            fingerprint = hashlib.sha256(
                json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
            ).hexdigest()
            claim = self.idempotency.claim(
                scope=principal.scope_key, key=key, fingerprint=fingerprint, job_id=job_id, now=self.now()
            )
            if not claim.same_request:
                raise Reject(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used within 24 hours for a different request body",
                )
            if not claim.new:
                existing = self.jobs.get(claim.job_id)
                if existing is not None:
                    log.info(
                        "job %s: Idempotency-Key replay, not enqueued again [%s]",
                        existing.job_id,
                        correlation_id,
                    )
                    return self._accepted(request, existing, replayed=True)
                job_id = claim.job_id  # claimed earlier but never recorded (a crash): finish the work now
                bind(job_id=job_id)
        try:
            record = self._record(job_id, spec, principal, correlation_id)
            try:
                stored = self.jobs.create(record)
            except JobConflict:
                existing = self.jobs.get(job_id)
                if existing is None:
                    raise TransientError("job record vanished while it was being created") from None
                return self._accepted(request, existing, replayed=True)
            self.enqueue(_message(stored))
        except Exception:
            if key is not None:
                _best_effort(
                    lambda: self.idempotency.release(scope=principal.scope_key, key=key, job_id=job_id)
                )
            _best_effort(lambda: self._mark_not_queued(job_id))
            raise
        log.info(
            "job %s accepted: %s in %s context for %s [%s]",
            job_id,
            spec.action,
            principal.context,
            principal.kind,
            correlation_id,
        )
        return self._accepted(request, stored, replayed=False)

    def _record(self, job_id: str, spec: JobSpec, principal: Principal, correlation_id: str) -> JobRecord:
        stamp = iso(datetime.fromtimestamp(self.now(), UTC))
        record = JobRecord(
            job_id=job_id,
            action=spec.action,
            spec=spec.to_json(),
            status="queued",
            correlation_id=correlation_id,
            context=principal.context,
            requested_by=principal.requested_by(),
            created_at=stamp,
            updated_at=stamp,
            tenant=spec.tenant,
            owner=principal.scope_key,
        )
        if principal.kind == "user" and principal.assertion:
            record = replace(
                record,
                sealed_assertion=seal(self.sealing_key(), job_id, principal.assertion),
                assertion_expires_at=principal.expires_at,
            )
        return record

    def _mark_not_queued(self, job_id: str) -> None:
        stamp = iso(datetime.now(UTC))

        def change(job: JobRecord) -> JobRecord | None:
            if job.status != "queued":
                return None
            error = {"code": "not_queued", "message": "the job could not be queued; submit it again"}
            return replace(
                job, status="failed", error=error, finished_at=stamp, updated_at=stamp, sealed_assertion=None
            )

        self.jobs.update(job_id, change)

    def _accepted(self, request: ApiRequest, job: JobRecord, *, replayed: bool) -> ApiResponse:
        status_url = f"{request.origin()}/api/jobs/{job.job_id}"
        payload = {
            "jobId": job.job_id,
            "action": job.action,
            "status": job.status,
            "statusUrl": status_url,
            "correlationId": job.correlation_id,
            "idempotentReplay": replayed,
        }
        headers = {"Location": status_url, "X-Correlation-ID": job.correlation_id}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(202, payload, headers)

    # -- GET /api/jobs/{id} ----------------------------------------------------------------------------------

    def status(self, request: ApiRequest, job_id: str) -> ApiResponse:
        correlation_id = _correlation_id(request)
        with log_context(correlation_id=correlation_id):
            return _answer(
                lambda: self._status(request, job_id, correlation_id), correlation_id, self._challenge()
            )

    def _status(self, request: ApiRequest, job_id: str, correlation_id: str) -> ApiResponse:
        principal = self._authenticate(request, signed_payload=status_payload(job_id or ""))
        job = self.jobs.get(job_id) if _JOB_ID.fullmatch(job_id or "") else None
        if job is None or job.owner != principal.scope_key:  # someone else's job reads as no job at all
            raise Reject(404, "not_found", "no job with this id (for this caller)")
        return json_response(200, job_view(job), {"X-Correlation-ID": correlation_id})

    # -- authentication and authorization --------------------------------------------------------------------

    def _challenge(self) -> str | None:
        return 'Bearer realm="mcas-jobs"' if self.bearer is not None else None

    def _authenticate(self, request: ApiRequest, *, signed_payload: bytes) -> Principal:
        """The caller, from its bearer token or its signature over `signed_payload` (the body of a POST, the
        canonical request line of a GET); a signature's webhook-id is consumed either way."""
        authorization = request.header("Authorization")
        if authorization is not None:
            if self.bearer is None:
                raise AuthFailure(
                    401, "bearer_not_accepted", "bearer tokens are not enabled; sign the request"
                )
            return self.bearer.authenticate(authorization)
        if sw.has_signature_headers(request.headers):
            return self.signature.authenticate(signed_payload, request.headers)
        raise AuthFailure(
            401, "unauthenticated", "sign the request (Standard Webhooks) or send an Entra ID bearer token"
        )

    def _authorize(self, principal: Principal, spec: JobSpec) -> None:
        if principal.kind != "user":
            target = spec.tenant or (self.config.tenants[0] if self.config.tenants else None)
            if target is not None and target not in self.config.allowed_tenants(principal.caller):
                raise AuthFailure(
                    403,
                    "tenant_not_allowed",
                    "this caller may not act on that tenant profile (MCAS_WEBHOOK_TENANT_SCOPES)",
                )
            return
        if spec.action == ACTION_DISCOVERY_UPLOAD:
            raise AuthFailure(
                403,
                "application_context_only",
                "discovery uploads run in application context: submit them signed or with an app token",
            )
        tenant_id = self.config.tenant_id_of(spec.tenant)
        if tenant_id and (principal.tenant_id or "").lower() != tenant_id.lower():
            raise AuthFailure(403, "tenant_mismatch", "a user token can only act on its own tenant's profile")


# -- request helpers -----------------------------------------------------------------------------------------


def _correlation_id(request: ApiRequest) -> str:
    """The caller's id when it is a sane token; otherwise a new one (an odd header is never fatal)."""
    for name in ("X-Correlation-ID", "X-Request-ID"):
        value = (request.header(name) or "").strip()
        if value and _CORRELATION.match(value):
            return value
    return str(uuid.uuid4())


def _check_size(request: ApiRequest) -> None:
    declared = request.header("Content-Length")
    too_big = len(request.body) > MAX_BODY_BYTES
    if declared and declared.strip().isdigit() and int(declared.strip()) > MAX_BODY_BYTES:
        too_big = True
    if too_big:
        raise Reject(413, "body_too_large", f"the request body must be at most {MAX_BODY_BYTES} bytes")


def _check_content_type(request: ApiRequest) -> None:
    raw = request.header("Content-Type") or ""
    media, _, params = raw.partition(";")
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
    if media.strip().lower() not in _JSON_TYPES or (
        charset and charset.group(1).lower() not in ("utf-8", "utf8")
    ):
        raise Reject(415, "unsupported_media_type", "send the job as Content-Type: application/json (UTF-8)")


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise Reject(400, "invalid_json", "the request body is empty; send the job as a JSON object")
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=unique_keys)
    except DuplicateKey as exc:
        raise Reject(
            400,
            "validation_failed",
            "the job is invalid",
            field_errors={exc.path: "is given more than once; send each field once"},
        ) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Reject(400, "invalid_json", "the request body is not valid UTF-8 JSON") from None


def _idempotency_key(request: ApiRequest) -> str | None:
    raw = request.header("Idempotency-Key")
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # the IETF draft's sf-string form
        value = value[1:-1]
    if not _IDEMPOTENCY_KEY.match(value):
        raise Reject(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
            field_errors={"headers.Idempotency-Key": "must be 1-255 visible ASCII characters"},
        )
    return value


def _message(job: JobRecord) -> str:
    """The queue message: ids only. The job itself (and any sealed assertion) stays in the job store."""
    return json.dumps(
        {
            "v": MESSAGE_VERSION,
            "jobId": job.job_id,
            "correlationId": job.correlation_id,
            "action": job.action,
        },
        separators=(",", ":"),
    )


def _best_effort(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        log.warning("cleanup after a failed enqueue did not complete", exc_info=True)


def _answer(work: Callable[[], ApiResponse], correlation_id: str, challenge: str | None) -> ApiResponse:
    """Run `work` and map every failure to an answer: 4xx for the caller's mistakes, 503/500 for ours."""
    try:
        return work()
    except Reject as exc:
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            correlation_id=correlation_id,
            field_errors=exc.field_errors,
            headers=exc.headers,
        )
    except AuthFailure as exc:
        headers: dict[str, str] = {}
        if challenge and exc.status == 401:
            headers["WWW-Authenticate"] = f'{challenge}, error="invalid_token"'
        elif challenge and exc.code == "insufficient_scope":
            headers["WWW-Authenticate"] = f'{challenge}, error="insufficient_scope"'
        log.info("jobs API refused a request: %s %s [%s]", exc.status, exc.code, correlation_id)
        return error_response(
            exc.status, exc.code, exc.message, correlation_id=correlation_id, headers=headers
        )
    except ValidationError as exc:
        return error_response(
            400, "validation_failed", exc.reason, correlation_id=correlation_id, field_errors=exc.field_errors
        )
    except ConfigurationError as exc:
        log.error("jobs API is misconfigured: %s [%s]", exc, correlation_id)
        return error_response(
            500, "misconfigured", "the service is misconfigured", correlation_id=correlation_id
        )
    except (AuthUnavailable, TransientError) as exc:
        log.warning("jobs API dependency unavailable: %s [%s]", exc, correlation_id)
        return _unavailable(correlation_id)
    except Exception as exc:
        if _is_azure_error(exc):
            log.warning("jobs API storage call failed: %s [%s]", type(exc).__name__, correlation_id)
            return _unavailable(correlation_id)
        log.exception("jobs API failed unexpectedly [%s]", correlation_id)
        return error_response(
            500, "internal_error", "the request could not be processed", correlation_id=correlation_id
        )


def _unavailable(correlation_id: str) -> ApiResponse:
    return error_response(
        503,
        "unavailable",
        "a dependency is unavailable; retry shortly",
        correlation_id=correlation_id,
        headers={"Retry-After": "5"},
    )


def _is_azure_error(exc: BaseException) -> bool:
    try:
        from azure.core.exceptions import AzureError
    except ImportError:  # pragma: no cover - azure-core is a runtime dependency
        return False
    return isinstance(exc, AzureError)


# -- the worker's instance -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def default_api() -> JobsApi:
    """Built on first request: settings, Key Vault secrets, Table and queue clients, the JWKS cache."""
    from shared.auth.keyvault import secret_store
    from shared.discovery.config import discovery_config
    from shared.discovery.handler import storage_account
    from shared.jobs.claims import SeenWebhookIds
    from shared.jobs.config import SIGNATURE_TOLERANCE_S, TOKEN_LEEWAY_S
    from shared.jobs.sealing import key_from_secret
    from shared.jobs.signature import WebhookKeys
    from shared.jobs.store import default_job_store
    from shared.settings import get_settings
    from shared.storage import QUEUE_JOBS, TABLE_JOBS, queue_client, table_client

    settings = get_settings()
    config = JobsConfig.from_settings(settings)
    secrets = secret_store(settings)
    discovery = discovery_config()
    seen = SeenWebhookIds(table_client(TABLE_JOBS), retention_s=2 * SIGNATURE_TOLERANCE_S + 60)
    keys = WebhookKeys(lambda bypass: secrets.get(config.webhook_secret_name, bypass_cache=bypass).value)
    bearer = None
    if config.bearer_enabled:
        bearer = BearerValidator(
            jwks_url=config.jwks_url,
            issuers=config.issuers,
            audiences=config.audiences,
            tenant_id=config.token_tenant_id,
            required_role=config.required_role,
            required_scope=config.required_scope,
            leeway_s=TOKEN_LEEWAY_S,
        )

    @functools.lru_cache(maxsize=1)
    def account() -> Any:
        return storage_account()

    graph_tenants = frozenset(p.name for p in settings.tenants if p.alert_source == "graph")

    def validation() -> ValidationContext:
        return ValidationContext(
            now=datetime.now(UTC),
            tenants=config.tenants,
            allow_loopback=config.allow_loopback,
            extra_sources=discovery.extra_sources,
            storage_account=account(),
            blob_containers=discovery.job_containers,
            graph_tenants=graph_tenants,
            default_tenant=config.tenants[0] if config.tenants else None,
        )

    queue = queue_client(QUEUE_JOBS)
    return JobsApi(
        config=config,
        jobs=default_job_store(),
        idempotency=IdempotencyStore(table_client(TABLE_JOBS), ttl_s=IDEMPOTENCY_TTL_S),
        enqueue=_sender(queue),
        signature=SignatureAuthenticator(
            keys, lambda msg_id: seen.first_use(msg_id, now=time.time()), tolerance_s=SIGNATURE_TOLERANCE_S
        ),
        bearer=bearer,
        sealing_key=lambda: key_from_secret(secrets.get(config.sealing_key_name).value),
        validation=validation,
    )


def _sender(queue: Any) -> Callable[[str], None]:
    def send(text: str) -> None:
        queue.send_message(text)

    return send


register_cache_reset(default_api.cache_clear)


def _unavailable_api(correlation_id: str, exc: Exception) -> ApiResponse:
    if isinstance(exc, ConfigurationError):
        log.error("jobs API is misconfigured: %s [%s]", exc, correlation_id)
        return error_response(
            500, "misconfigured", "the service is misconfigured", correlation_id=correlation_id
        )
    log.warning("jobs API could not start: %s [%s]", type(exc).__name__, correlation_id)
    return _unavailable(correlation_id)


def handle_submit(request: ApiRequest) -> ApiResponse:
    """Entry point of POST /api/jobs (functions/jobs.py). Never raises."""
    try:
        api = default_api()
    except Exception as exc:
        return _unavailable_api(_correlation_id(request), exc)
    return api.submit(request)


def handle_status(request: ApiRequest, job_id: str) -> ApiResponse:
    """Entry point of GET /api/jobs/{id}. Never raises."""
    try:
        api = default_api()
    except Exception as exc:
        return _unavailable_api(_correlation_id(request), exc)
    return api.status(request, job_id)
