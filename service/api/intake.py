"""What happens to an upload before its body is read: the key, the capacity, and the body's bounds.

FastAPI reads a multipart body whole before any dependency runs, so a key or capacity check in a
route comes after the memory is spent. Here, for the upload routes, a missing key (401) and a full
service (503) are answered from the headers alone; every body is then held to its size limit (413),
its time limit (408), and a budget of body bytes shared by the whole process (503), so slow or
unauthenticated uploads cannot fill the memory.
"""

from __future__ import annotations

import asyncio
import re
import time

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import ApiError, as_api_error, send_error
from service.api.security import unauthorized
from service.ops.access import key_is_valid
from service.ops.admission import RETRY_AFTER_OVERLOADED, Overloaded


class BodyBudget:
    """Body bytes being received across the process; used only from the event loop thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> bool:
        if self.used + count > self.limit:
            return False
        self.used += count
        return True

    def give_back(self, count: int) -> None:
        self.used -= count


class PathTemplates:
    """Route templates such as /v1/studies/{study_id}/sessions, matched here, before the router runs."""

    def __init__(self, templates: set[str]) -> None:
        self.patterns = [(t, re.compile("^" + re.sub(r"\\{[^}/]+\\}", "[^/]+", t) + "$")) for t in sorted(templates)]

    def match(self, path: str) -> str | None:
        """The template the path fits, or None."""
        return next((template for template, pattern in self.patterns if pattern.match(path)), None)


class RefusedBody(HTTPException):
    """Raised from `receive`, so the app's own JSON error handler answers it."""


class IntakeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        route_body_limits: dict[str, int],
        upload_routes: set[str],
        budget: BodyBudget,
        body_timeout_s: float,
        keyless: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.keyless = keyless  # upload routes that check a token of their own instead of the API key
        self.max_body_bytes = max_body_bytes
        self.route_body_limits = route_body_limits  # templates whose bodies may be larger (or smaller)
        self.upload_routes = PathTemplates(upload_routes)  # checked for a key and for capacity before their body
        self.budget = budget
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = self.upload_routes.match(scope["path"])
        if scope["method"] in ("POST", "PUT") and upload is not None:
            refusal = early_refusal(scope, headers, keyed=upload not in self.keyless)
            if refusal is not None:
                await send_error(
                    send, refusal.status, refusal.code, refusal.message, request_id(scope), refusal.headers
                )
                return
        limit = self.route_body_limits.get(upload, self.max_body_bytes)
        declared = headers.get("content-length", "")
        # A declared length over the limit is refused before a byte of the body is read.
        if declared.isdigit() and int(declared) > limit:
            too_large = f"the request body exceeds {limit} bytes"
            await send_error(send, 413, "request_too_large", too_large, request_id(scope))
            return
        body = BodyReader(receive, limit, self.budget, time.monotonic() + self.body_timeout_s)
        try:
            await self.app(scope, body.receive, send)
        finally:
            body.release()


def request_id(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


def early_refusal(scope: Scope, headers: Headers, keyed: bool = True) -> ApiError | None:
    """The 401 or 503 the headers already decide (the route's own checks, made early), or None. A keyless
    route (a participant link's upload) checks its own token."""
    state = scope["app"].state
    keys = state.api_keys
    if keyed and keys and not key_is_valid(headers.get("x-api-key"), keys):
        return unauthorized()
    runtime = getattr(state, "runtime", None)
    try:
        if runtime is not None:
            runtime.admission.check()
    except Overloaded as full:
        return as_api_error(full)
    return None


class BodyReader:
    """One request's body as it arrives: counted against its limit and the process budget, within its deadline."""

    def __init__(self, receive: Receive, limit: int, budget: BodyBudget, deadline: float) -> None:
        self._receive = receive
        self.limit = limit
        self.budget = budget
        self.deadline = deadline
        self.received = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:  # only the disconnect is left to wait for: no deadline on that
            return await self._receive()
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            raise RefusedBody(408, "the request body was not received in time") from None
        chunk = len(message.get("body", b""))
        self.complete = message["type"] != "http.request" or not message.get("more_body", False)
        if self.received + chunk > self.limit:
            raise RefusedBody(413, f"the request body exceeds {self.limit} bytes")
        if not self.budget.take(chunk):
            raise RefusedBody(503, "the service is at capacity; retry shortly", {"Retry-After": RETRY_AFTER_OVERLOADED})
        self.received += chunk
        return message

    def release(self) -> None:
        self.budget.give_back(self.received)
        self.received = 0
