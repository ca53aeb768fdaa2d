"""The open live streams of a process, bounded, so a shutdown can close each one cleanly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

# WebSocket close code of a stream closed by a shutdown (RFC 6455, section 7.4.1).
GOING_AWAY = 1001


class Stoppable(Protocol):
    def stop(self, code: int, reason: str) -> None: ...


class StreamRegistry:
    """Streams register while open; past `limit` a new one is refused, and `close_all` ends them at shutdown."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[Stoppable] = set()
        self.accepting = True

    def has_room(self) -> bool:
        return self.accepting and len(self.open) < self.limit

    @contextmanager
    def holding(self, stream: Stoppable) -> Iterator[None]:
        self.open.add(stream)
        try:
            yield
        finally:
            self.open.discard(stream)

    async def close_all(self, timeout_s: float) -> None:
        """Stop taking streams, close the open ones with 1001 after their frame in flight, and wait for them."""
        self.accepting = False
        streams = list(self.open)
        for stream in streams:
            stream.stop(GOING_AWAY, "the service is shutting down")
        deadline = time.monotonic() + timeout_s
        while self.open and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
