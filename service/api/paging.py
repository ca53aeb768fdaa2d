"""List pages, the same on every list: a page size and the opaque cursor a page hands out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query

from service.api.errors import ApiError

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="Most items on one page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        pattern=r"^[A-Za-z0-9_=-]*$",  # empty: the first page
        description="The `next_cursor` of the previous page, as it was given (opaque; any other is a 422).",
    ),
]


async def paged(page: Callable[[], T]) -> T:
    """A store's page, off the event loop; a cursor it did not give out (ValueError) is a 422."""
    try:
        return await asyncio.to_thread(page)
    except ValueError:
        raise ApiError(422, "invalid_request", "cursor: not a cursor this service gave out") from None
