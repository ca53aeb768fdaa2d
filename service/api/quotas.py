"""The per-key request rate, as a route dependency of every keyed /v1 route (service.ops.quotas)."""

from __future__ import annotations

from fastapi import Request

from service.api.deps import OwnerDep


async def within_request_rate(request: Request, owner: OwnerDep) -> None:
    """429 `rate_limited` with Retry-After past the key's EMOTION_QUOTA_REQUESTS_PER_S. Before start-up has
    finished there are no quotas yet, and the route answers 503 `not_ready` itself."""
    quotas = getattr(request.app.state, "key_quotas", None)
    if quotas is not None:
        quotas.take_request(owner)
