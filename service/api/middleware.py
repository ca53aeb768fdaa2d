"""Per-request context: a request id on every response and log line, access logging, HTTP metrics,
and the last-resort 500 that never shows a traceback.

Logs name the route template (`/v1/predict`), never the raw path, query or body: nothing a client
sends is logged.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import send_error
from service.ops.metrics import Metrics

log = logging.getLogger("service.access")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# A caller's own id is kept only when it is short and plain, so it cannot inject into logs.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Any other method (a client can send any token) is labelled and logged as "other".
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO: a webhook's callback URL may carry the receiver's token.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if CLIENT_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                if draining(scope):  # see service.api.shutdown
                    headers["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                message = "internal error; quote the request id when reporting it"
                await send_error(send_with_id, 500, "internal_error", message, request_id)
        finally:
            path = route_template(scope)
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in STANDARD_METHODS else "other"
            self.metrics.requests.labels(path, method, str(status)).inc()
            self.metrics.request_seconds.labels(path).observe(elapsed)
            log.info("%s %s %d %.1fms", method, path, status, elapsed * 1000)
            request_id_var.reset(token)


def route_template(scope: Scope) -> str:
    """The label of a request: its route's template with the router's prefix (/v1/jobs/{job_id}), a mount's
    prefix for files under it, or one shared label for anything else. Cardinality stays bounded."""
    route_path = getattr(scope.get("route"), "path_format", None)
    if route_path is None:
        return scope.get("root_path") or "unmatched"
    # The route knows its own part; the path's leading segments before it are the include prefix.
    tail = route_path.count("/")
    prefix = "/".join(scope["path"].split("/")[:-tail])
    return prefix + route_path


def draining(scope: Scope) -> bool:
    runtime = getattr(scope["app"].state, "runtime", None)
    return runtime is not None and runtime.draining
