"""`python -m service worker`: job workers alone, without the HTTP API, so they scale apart from it.

The process loads and warms the models as the API does, works on jobs until SIGTERM, then stops
claiming and finishes the jobs in hand (up to the shutdown timeout; leases cover the rest).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from service.config import Settings
from service.jobs.worker import serving
from service.ops.allocator import keep_one_warm_heap
from service.ops.metrics import Metrics
from service.studies.sessions import JOB_KINDS

log = logging.getLogger(__name__)


async def run_workers(settings: Settings) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    workers = max(1, settings.job_workers)
    keep_one_warm_heap()  # before the worker threads allocate, as in the API: see service.ops.allocator
    async with serving(settings, Metrics(), workers, JOB_KINDS) as (runtime, _):
        runtime.set_ready(True)
        log.info("job workers running: %d", workers)
        await stop.wait()
        log.info("SIGTERM: finishing the jobs in hand")
