"""Request rates per key (a participant link): a token bucket each, refilled continuously, so a page's
steady checks pass and a flood is refused with how long to wait."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class RateLimited(Exception):
    """Past the key's rate: the API answers 429 with Retry-After."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many requests from this link; retry shortly")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Up to `per_minute` requests a minute per key, in bursts of at most that many. Used from the event
    loop thread only; the buckets of the least recently seen keys are dropped past `most_keys`."""

    def __init__(self, per_minute: int, most_keys: int = 10_000) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.most_keys = most_keys
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            raise RateLimited(math.ceil((1 - tokens) / self.refill_per_s))
        self.buckets[key] = (tokens - 1, now)
        while len(self.buckets) > self.most_keys:
            self.buckets.popitem(last=False)
