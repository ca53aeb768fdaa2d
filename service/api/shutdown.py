"""Shutting down without losing a request, behind any health-checking load balancer.

On SIGTERM, readiness turns 503 at once, but the service keeps serving new requests for
`drain_s`: long enough for a balancer's health check to take it out of rotation. Meanwhile every
response carries `Connection: close`, so clients and balancers stop reusing connections to it and
no keep-alive connection is closed under them later. Then open streams are answered and closed
with 1001, and uvicorn takes over: it stops accepting, finishes the requests in flight (up to its
graceful timeout) and exits 0. A second SIGTERM ends the process at once.

Only the main thread may set signal handlers: under a test client, which runs the app elsewhere,
nothing is installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from service.runtime import Runtime

log = logging.getLogger(__name__)
SignalHandler = Callable[[int, FrameType | None], object]


class Drain:
    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.previous: SignalHandler | None = None
        self.task: asyncio.Task | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        self.previous = previous if callable(previous) else None
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.runtime.draining:
            log.warning("second SIGTERM: exiting at once")
            os._exit(1)
        self.runtime.start_draining()
        log.info("SIGTERM: readiness off, serving %.1f s more with Connection: close", self.runtime.settings.drain_s)
        self.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self.task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        await asyncio.sleep(self.runtime.settings.drain_s)
        log.info("drain over: closing streams, finishing requests in flight")
        await self.runtime.streams.close_all(self.runtime.settings.shutdown_timeout_s)
        if self.previous is not None:
            self.previous(signal.SIGTERM, None)  # uvicorn's own handler: stop accepting, finish, exit
