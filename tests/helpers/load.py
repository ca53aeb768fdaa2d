"""Closed-loop clients posting one photo again and again, recording every outcome: the load behind the
balancer, rolling-restart and drain tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    sent: float
    done: float
    status: int  # 0 for a connection error
    server: str | None  # the balancer's X-Served-By, if any


@dataclass
class Load:
    """`clients` threads posting the photo to `url` (a /v1/predict) until stopped, or for 5 minutes."""

    url: str
    photo: bytes
    clients: int = 6
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> None:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 300
            while not self.stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = http.post(self.url, files={"files": ("a.jpg", self.photo, "image/jpeg")})
                    status, server = response.status_code, response.headers.get("x-served-by")
                except httpx.HTTPError:
                    status, server = 0, None
                self.outcomes.append(Outcome(sent, time.monotonic(), status, server))

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        threads = [threading.Thread(target=self.client) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=60)

    def failures(self) -> list[Outcome]:
        """Every request not answered 200, connection errors included."""
        return [o for o in self.outcomes if o.status != 200]

    def answered(self) -> list[Outcome]:
        """Every request that got an HTTP answer."""
        return [o for o in self.outcomes if o.status != 0]

    def served_by(self, server: str, after: float) -> int:
        return sum(o.server == server and o.sent > after for o in self.outcomes)
