"""Bounded admission: past a fixed number of predict requests in flight, refuse at once.

Queueing more work than the CPU can finish only grows latency and memory for everyone; a fast 503
with Retry-After lets the load balancer send the request to another pod instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.ops.metrics import Metrics

RETRY_AFTER_OVERLOADED = "1"


class Overloaded(Exception):
    """No slot is free: the API answers 503 with Retry-After."""


class Admission:
    """Used only from the event loop thread, so a plain counter needs no lock."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.active = 0
        self.metrics = metrics

    def check(self) -> None:
        """Refuse now if no slot is free: also called before a request's body is read."""
        if self.active >= self.limit:
            raise Overloaded("the service is at capacity; retry shortly")

    def acquire(self) -> Callable[[], None]:
        """Take a slot now (or refuse with 503); returns the release, which is safe to call more than once."""
        self.check()
        self.active += 1
        self.metrics.in_flight.set(self.active)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1
                self.metrics.in_flight.set(self.active)

        return release

    @contextmanager
    def slot(self) -> Iterator[None]:
        release = self.acquire()
        try:
            yield
        finally:
            release()
