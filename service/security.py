"""Optional API keys, sent as `X-API-Key`.

Every configured key is compared in constant time, and a missing key and a wrong key get the same
answer, so a caller learns nothing about which part failed.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.errors import ApiError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when API keys are configured.")


def key_is_valid(presented: str | None, keys: list[str]) -> bool:
    """Whether a presented key is configured; any string (even one UTF-8 cannot encode) is a plain no."""
    presented_bytes = (presented or "").encode(errors="surrogatepass")
    matches = [hmac.compare_digest(presented_bytes, key.encode()) for key in keys]  # no early exit
    return presented is not None and any(matches)


async def require_api_key(request: Request, presented: Annotated[str | None, Security(api_key_header)]) -> None:
    """A route dependency; does nothing when no keys are configured. Async: it never blocks."""
    keys = request.app.state.api_keys
    if keys and not key_is_valid(presented, keys):
        raise ApiError(
            401, "unauthorized", "a valid X-API-Key header is required", headers={"WWW-Authenticate": "ApiKey"}
        )
