"""Client-facing errors: one JSON shape, `{"error": {"code", "message", "request_id"}}`, never a traceback."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Send

from service.failures import DOMAIN_ERRORS, failure_of
from service.jobs.store import EventPending, IdempotencyConflict, NoEvent, QuotaExceeded
from service.jobs.submission import WebhooksOff
from service.jobs.webhooks import UnsafeTarget
from service.ops.rates import RateLimited
from service.studies.compare import EmptyStudy
from service.studies.links import LinkFull, LinkRefused
from service.studies.on_device import TraceRefused
from service.studies.segments import SegmentTooSmall
from service.studies.sessions import DuplicateViewer, StudyModelPinned
from service.studies.stimulus import StimulusMismatch
from service.studies.store import ModelPinned


class ApiError(Exception):
    """An error with the status and stable code a client can branch on."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


# What refuses a submission to the job queue or a study's request, and its HTTP answer.
SUBMISSION_ERRORS = {
    IdempotencyConflict: (409, "idempotency_conflict", "this Idempotency-Key was used for a different request"),
    UnsafeTarget: (422, "unsafe_callback_url", None),
    WebhooksOff: (422, "webhooks_not_configured", None),
    StudyModelPinned: (409, "study_model_pinned", None),
    ModelPinned: (409, "model_changed", None),
    EmptyStudy: (409, "empty_study", None),
    DuplicateViewer: (409, "duplicate_viewer", None),
    SegmentTooSmall: (409, "segment_too_small", None),
    StimulusMismatch: (409, "stimulus_duration_mismatch", None),
    LinkRefused: (403, "link_refused", None),
    LinkFull: (409, "link_full", None),
    TraceRefused: (422, "invalid_trace", None),
    NoEvent: (409, "no_event", None),
    EventPending: (409, "event_pending", None),
}


def as_api_error(error: Exception) -> ApiError:
    """The HTTP answer to an error raised below the API (one of DOMAIN_ERRORS or SUBMISSION_ERRORS), or to
    an ApiError itself."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, RateLimited):
        return ApiError(429, "rate_limited", str(error), headers={"Retry-After": str(error.retry_after_s)})
    if isinstance(error, QuotaExceeded):
        return ApiError(429, f"quota_{error.limit}", str(error), headers={"Retry-After": str(error.retry_after_s)})
    if type(error) in SUBMISSION_ERRORS:
        status, code, message = SUBMISSION_ERRORS[type(error)]
        return ApiError(status, code, message or str(error))
    failure = failure_of(error)
    return ApiError(failure.status, failure.code, failure.message, headers=failure.headers or None)


def timed_out(seconds: float) -> ApiError:
    """The 504 of a request that ran past its time limit."""
    return ApiError(504, "timeout", f"not finished within {seconds:g} s")


def error_body(code: str, message: str, request_id: str | None) -> dict:
    """The one error shape, wherever it is sent from: a response, the middleware, an NDJSON line."""
    return {"error": {"code": code, "message": message, "request_id": request_id}}


async def send_error(
    send: Send, status: int, code: str, message: str, request_id: str | None, headers: dict[str, str] | None = None
) -> None:
    """An error response sent from an ASGI middleware, below the app's own exception handlers."""
    body = json.dumps(error_body(code, message, request_id)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def error_response(request: Request, status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    return JSONResponse(error_body(code, message, request_id), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        error = as_api_error(exc)
        return error_response(request, error.status, error.code, error.message, error.headers)

    for kind in (ApiError, RateLimited, QuotaExceeded, *DOMAIN_ERRORS, *SUBMISSION_ERRORS):
        app.add_exception_handler(kind, api_error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Summarise pydantic's errors without echoing the input values back.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in exc.errors()
        )
        return error_response(request, 422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: "request_too_large",
            503: "overloaded",
        }.get(exc.status_code, "bad_request")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(request, exc.status_code, code, str(exc.detail), headers)


def allowed_methods(request: Request) -> str:
    """Every method of the path's most specific routes (`/v1/studies/compare` before `/v1/studies/{id}`).
    Starlette names only the first route matching the path, and routes here have one method each, so its
    Allow header would leave out the path's other methods."""
    by_specificity: dict[int, set[str]] = {}
    for route in iter_route_contexts(request.app.routes):
        if route.methods and compile_path(route.path)[0].fullmatch(request.url.path):
            by_specificity.setdefault(route.path.count("{"), set()).update(route.methods)
    return ", ".join(sorted(by_specificity[min(by_specificity)])) if by_specificity else ""
