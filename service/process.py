"""The composition root: what one process serves, built and torn down in one place.

`serving()` loads and warms the models, starts their batchers, opens the job queue and starts the job
loops with every kind of job registered (photo and video from service.jobs.kinds, session from
service.studies.sessions). The API's lifespan (service.api.app) and `python -m service worker`
(`run_workers`) both run inside it. Nothing below imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from service.config import Settings
from service.jobs.dispatcher import WebhookDispatcher
from service.jobs.kinds import analysis_kinds
from service.jobs.queue import Jobs, KindAnswer, open_jobs
from service.jobs.sweeps import SWEEP_EVERY_S, sweep, sweep_orphans
from service.jobs.usage import FLUSH_EVERY_S
from service.jobs.worker import JobWorker, keep_running
from service.ops.admission import Admission
from service.ops.allocator import keep_one_warm_heap, returning_free_pages
from service.ops.metrics import Metrics
from service.runtime import Runtime, load_runtime, warm_up
from service.studies.sessions import session_kinds

log = logging.getLogger(__name__)


def job_kinds(runtime: Runtime, jobs: Jobs) -> dict[str, KindAnswer]:
    """Every kind of job this process answers."""
    return {**analysis_kinds(runtime, jobs.usage), **session_kinds(runtime, jobs)}


@contextlib.asynccontextmanager
async def serving(settings: Settings, metrics: Metrics, workers: int) -> AsyncIterator[tuple[Runtime, Jobs]]:
    """Models loaded and warmed, their batchers and `workers` job workers (every kind of job) running,
    and the heap's free pages returned to the kernel (service.ops.allocator); on exit
    the workers finish the jobs in hand (up to the shutdown timeout), then the batchers stop. The API's
    lifespan and `python -m service worker` both run inside this."""
    runtime = load_runtime(settings, metrics)
    await asyncio.to_thread(warm_up, runtime)
    for served in runtime.emotion_models.values():
        served.batcher.start()
    jobs = await asyncio.to_thread(open_jobs, settings, metrics)
    runner = JobRunner(jobs, job_kinds(runtime, jobs), workers, runtime.admission)
    runner.start()
    try:
        async with returning_free_pages():
            yield runtime, jobs
    finally:
        await runner.stop(settings.shutdown_timeout_s)
        for served in runtime.emotion_models.values():
            served.batcher.stop()


class JobRunner:
    """The loops of one process: its workers, the webhook dispatcher and the sweep."""

    def __init__(self, jobs: Jobs, kinds: dict[str, KindAnswer], workers: int, admission: Admission) -> None:
        self.jobs, self.kinds, self.workers, self.admission = jobs, kinds, workers, admission
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loops = [JobWorker(self.jobs, self.kinds, self.admission).run(self.stopping) for _ in range(self.workers)]
        every_s = min(SWEEP_EVERY_S, self.jobs.settings.job_retention_h * 3600 / 2)
        sweeping = keep_running(lambda: sweep(self.jobs), self.stopping, every_s)
        orphans = keep_running(lambda: sweep_orphans(self.jobs), self.stopping, self.jobs.settings.media_orphan_age_s)
        counting = keep_running(self.flush_usage, self.stopping, FLUSH_EVERY_S)
        loops += [WebhookDispatcher(self.jobs).run(self.stopping), sweeping, orphans, counting]
        self.tasks = [asyncio.create_task(loop) for loop in loops]

    async def flush_usage(self) -> bool:
        await asyncio.to_thread(self.jobs.usage.flush)
        return False  # nothing waits: the next flush comes after the pause

    async def stop(self, timeout_s: float) -> None:
        """Stop claiming; wait for the jobs in hand up to the timeout (their leases cover the rest)."""
        self.stopping.set()
        done, pending = await asyncio.wait(self.tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:  # cancelled work ends at its next await: webhook attempts are async, never a thread
            await asyncio.wait(pending, timeout=1)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("a job loop failed", exc_info=task.exception())
        await self.flush_usage()  # the last seconds' counts, including the jobs just finished


async def run_workers(settings: Settings) -> None:
    """`python -m service worker`: job workers alone, without the HTTP API, so they scale apart from it.
    Works on jobs until SIGTERM, then stops claiming and finishes the jobs in hand (up to the shutdown
    timeout; leases cover the rest)."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    workers = max(1, settings.job_workers)
    keep_one_warm_heap()  # before the worker threads allocate, as in the API: see service.ops.allocator
    async with serving(settings, Metrics(), workers) as (runtime, _):
        runtime.set_ready(True)
        log.info("job workers running: %d", workers)
        await stop.wait()
        log.info("SIGTERM: finishing the jobs in hand")
