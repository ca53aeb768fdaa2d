"""The report pool: its own threads, a bounded queue that refuses at once, and a cache by key."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.ops.admission import Overloaded
from service.studies.reports import ReportPool

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def test_past_its_queue_the_pool_refuses_and_a_known_key_is_not_computed_again() -> None:
    async def scenario() -> None:
        pool = ReportPool(workers=1, queue=1)
        release = threading.Event()
        calls: list[str] = []

        def slow(name: str) -> str:
            calls.append(name)
            release.wait(10)
            return name.upper()

        running = [asyncio.ensure_future(pool.compute(k, lambda k=k: slow(k))) for k in ("a", "b")]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await pool.compute("c", lambda: slow("c"))
        release.set()
        assert await asyncio.gather(*running) == ["A", "B"]
        assert await pool.compute("a", lambda: slow("again")) == "A" and calls == ["a", "b"]
        pool.close()

    asyncio.run(scenario())
