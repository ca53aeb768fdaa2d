"""One request of a key's, as a route dependency of every keyed /v1 route: within the key's request
rate (service.ops.quotas) and counted in its usage (service.jobs.usage)."""

from __future__ import annotations

from fastapi import Request

from service.api.deps import OwnerDep


async def metered_request(request: Request, owner: OwnerDep) -> None:
    """429 `rate_limited` with Retry-After past the key's EMOTION_QUOTA_REQUESTS_PER_S; a request let in
    is counted. Before start-up has finished there are neither yet, and the route answers 503 `not_ready`."""
    quotas = getattr(request.app.state, "key_quotas", None)
    if quotas is not None:
        quotas.take_request(owner)
        request.app.state.jobs.usage.add(owner, requests=1)
