"""SOAR jobs blueprint: POST /api/jobs, GET /api/jobs/{job_id}, GET /api/openapi.json, the worker and its
poison handler. Each function turns its trigger payload into plain values and calls one shared/jobs entry
point.

HTTP functions need the function key (`auth_level=FUNCTION`) *and* the jobs API's own authentication (a
Standard Webhooks signature or an Entra ID bearer token), checked in shared/jobs/intake.py.
"""

from __future__ import annotations

import azure.functions as func

from shared.jobs.http import ApiRequest, ApiResponse
from shared.log_context import log_context
from shared.storage import QUEUE_JOBS

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


def _request(req: func.HttpRequest) -> ApiRequest:
    return ApiRequest(method=req.method, url=req.url, headers=dict(req.headers), body=req.get_body() or b"")


def _response(answer: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(body=answer.body, status_code=answer.status, headers=answer.headers)


@bp.function_name(name="jobs_submit")
@bp.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def jobs_submit(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.jobs.intake import handle_submit

    with log_context(invocation_id=context.invocation_id):  # intake adds correlation id and job id
        return _response(handle_submit(_request(req)))


@bp.function_name(name="jobs_status")
@bp.route(route="jobs/{job_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def jobs_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.jobs.intake import handle_status

    with log_context(invocation_id=context.invocation_id):
        return _response(handle_status(_request(req), req.route_params.get("job_id", "")))


@bp.function_name(name="jobs_openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def jobs_openapi(req: func.HttpRequest) -> func.HttpResponse:
    from shared.jobs.openapi import openapi_response

    return _response(openapi_response(_request(req)))


@bp.function_name(name="jobs_worker")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_JOBS, connection="AzureWebJobsStorage")
def jobs_worker(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.jobs.worker import process_message

    with log_context(invocation_id=context.invocation_id):  # the worker adds job id and correlation id
        process_message(msg.get_body(), message_id=msg.id, dequeue_count=msg.dequeue_count)


@bp.function_name(name="jobs_poison")
@bp.queue_trigger(arg_name="msg", queue_name=f"{QUEUE_JOBS}-poison", connection="AzureWebJobsStorage")
def jobs_poison(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.jobs.worker import process_poison

    with log_context(invocation_id=context.invocation_id):
        process_poison(msg.get_body(), message_id=msg.id, dequeue_count=msg.dequeue_count)
