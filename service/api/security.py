"""Optional API keys, sent as `X-API-Key`.

Every configured key is compared in constant time, and a missing key and a wrong key get the same
answer, so a caller learns nothing about which part failed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.api.errors import ApiError
from service.ops.access import key_is_valid

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when API keys are configured.")


async def require_api_key(request: Request, presented: Annotated[str | None, Security(api_key_header)]) -> None:
    """A route dependency; does nothing when no keys are configured. Async: it never blocks."""
    keys = request.app.state.api_keys
    if keys and not key_is_valid(presented, keys):
        raise unauthorized()


def unauthorized() -> ApiError:
    """The one answer to a missing or wrong key, wherever it is checked."""
    return ApiError(401, "unauthorized", "a valid X-API-Key header is required", headers={"WWW-Authenticate": "ApiKey"})
