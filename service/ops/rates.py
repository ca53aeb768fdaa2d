"""Request rates per key (an API key, a participant link): a token bucket each, refilled continuously,
so steady use passes and a flood is refused with how long to wait."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class RateLimited(Exception):
    """Past the key's rate: the API answers 429 with Retry-After."""

    def __init__(self, retry_after_s: float, message: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Up to `per_s` requests a second per key, in bursts of at most `burst`. Used from the event loop
    thread only; the buckets of the least recently seen keys are dropped past `most_keys`."""

    def __init__(self, per_s: float, burst: float, refusal: str, most_keys: int = 10_000) -> None:
        self.capacity = float(burst)
        self.refill_per_s = per_s
        self.refusal = refusal  # what a refused request is told
        self.most_keys = most_keys
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            raise RateLimited(math.ceil((1 - tokens) / self.refill_per_s), self.refusal)
        self.buckets[key] = (tokens - 1, now)
        while len(self.buckets) > self.most_keys:
            self.buckets.popitem(last=False)
