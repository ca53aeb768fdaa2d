"""`python -m service worker`: job workers alone, without the HTTP API, so they scale apart from it.

The process loads and warms the models as the API does, works on jobs until SIGTERM, then stops
claiming and finishes the jobs in hand (up to the shutdown timeout; leases cover the rest).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from service.config import Settings
from service.jobs.worker import JobRunner, open_jobs
from service.ops.metrics import Metrics
from service.runtime import load_runtime, warm_up

log = logging.getLogger(__name__)


async def run_workers(settings: Settings) -> None:
    metrics = Metrics()
    runtime = load_runtime(settings, metrics)
    await asyncio.to_thread(warm_up, runtime)
    for served in runtime.emotion_models.values():
        served.batcher.start()
    runtime.set_ready(True)
    jobs = await asyncio.to_thread(open_jobs, settings, metrics)
    runner = JobRunner(jobs, runtime, max(1, settings.job_workers))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    runner.start()
    log.info("job workers running: %d", runner.workers)
    await stop.wait()
    log.info("SIGTERM: finishing the jobs in hand")
    await runner.stop(settings.shutdown_timeout_s)
    for served in runtime.emotion_models.values():
        served.batcher.stop()
