"""Where study reports are computed: threads of their own, a bounded queue, and a cache.

A report is numpy work that grows with viewers x seconds x resamples. On asyncio's default thread
pool, which also decodes every upload, a few large reports would stall photos for every tenant. Here
they get `study_report_workers` threads; past `study_report_queue` waiting, a request is refused at
once (503 with Retry-After), and a report asked again before any of its study's sessions changed is
answered from the cache.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from service.ops.admission import Overloaded

T = TypeVar("T")
CACHED_RESULTS = 16  # a 600 s report is a few MB


class ReportPool:
    """Used from the event loop thread only, so its counter and cache need no lock."""

    def __init__(self, workers: int, queue: int) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="study-report")
        self.capacity = workers + queue
        self.taken = 0
        self.cache: OrderedDict[Hashable, object] = OrderedDict()

    async def compute(self, key: Hashable, work: Callable[[], T]) -> T:
        """The result of `work`, from the cache when `key` (which must name every input) was computed before."""
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]  # type: ignore[return-value]
        result = await self.run(work)
        self.cache[key] = result
        while len(self.cache) > CACHED_RESULTS:
            self.cache.popitem(last=False)
        return result

    async def run(self, work: Callable[[], T]) -> T:
        """`work` on the pool's threads, not cached (rendering a cached report); Overloaded past the queue."""
        if self.taken >= self.capacity:
            raise Overloaded("study reports are at capacity; retry shortly")
        self.taken += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, work)
        finally:
            self.taken -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
