"""Job workers: claim a job, answer it with its kind's registered answer, record the outcome once.

They run inside the API process (`EMOTION_JOB_WORKERS`, default 1) or alone in
`python -m service worker`, so Kubernetes can scale them apart from the API. A worker knows no
kind of its own: service.process registers photo, video and session answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping

from service.failures import DOMAIN_ERRORS, failure_of
from service.jobs.queue import JobRefused, Jobs, KindAnswer
from service.jobs.schema import Job
from service.ops.admission import Admission, Overloaded

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobWorker:
    def __init__(self, jobs: Jobs, kinds: Mapping[str, KindAnswer], admission: Admission) -> None:
        self.jobs, self.kinds, self.admission = jobs, kinds, admission
        self.name = worker_name()
        self.settings = jobs.settings

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until `stopping` is set. A job in hand is finished first; cancelled (the shutdown's time ran
        out), it goes back to the queue; a crash leaves it to its lease."""
        await keep_running(self.step, stopping, self.settings.job_poll_s)

    async def step(self) -> bool:
        """Claim and answer one job; False when there was none."""
        job = await asyncio.to_thread(
            self.jobs.store.claim, self.name, self.settings.job_lease_s, self.settings.job_max_attempts
        )
        if job is None:
            return False
        self.jobs.metrics.job_queue_seconds.observe((job.started_at - job.created_at).total_seconds())
        await self.process(job)
        return True

    async def process(self, job: Job) -> None:
        """Answer the job while renewing its lease; a job cancelled or taken over meanwhile is dropped."""
        work = asyncio.ensure_future(self._outcome(job))
        renewing = asyncio.ensure_future(self._renew_until_lost(job, work))
        try:
            result, error = await work
        except asyncio.CancelledError:
            if renewing.done():  # the lease was lost: another worker or the client decided
                return
            # A graceful shutdown ran out of time for this job: back to the queue, at no attempt's cost. In
            # this thread, not another: the task is being cancelled, and the write is one short transaction.
            if self.jobs.store.release(job.id, self.name):
                log.info("job %s given back to the queue at shutdown", job.id)
            raise
        finally:
            renewing.cancel()
        finished = await asyncio.to_thread(self.jobs.store.finish, job.id, self.name, result, error)
        if finished is None:
            return
        await asyncio.to_thread(self.jobs.drop_media, job)
        self.jobs.metrics.jobs.labels(finished.status).inc()
        self.jobs.metrics.job_run_seconds.observe((finished.finished_at - finished.started_at).total_seconds())

    async def _renew_until_lost(self, job: Job, work: asyncio.Future) -> None:
        lease = self.settings.job_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            if not await asyncio.to_thread(self.jobs.store.renew, job.id, self.name, lease):
                work.cancel()
                return

    async def _outcome(self, job: Job) -> tuple[str | None, tuple[str, str] | None]:
        """(the answer's JSON, None), or (None, (error code, message)) as the synchronous endpoint would refuse.

        A job takes an admission slot like a request, whatever its kind: while the process is full, it
        waits (its lease renewed) instead of adding to the load."""
        try:
            data = await asyncio.to_thread(self.jobs.media.read, job.media)
        except OSError:
            return None, ("media_missing", "the upload is no longer in the media store")
        answer = self.kinds.get(job.kind)
        if answer is None:
            return None, ("unknown_kind", f"no worker here answers jobs of kind {job.kind!r}")
        while True:
            try:
                with self.admission.slot():
                    return await answer(job, data), None
            except Overloaded:
                await asyncio.sleep(1)
            except JobRefused as refused:
                return None, (refused.code, refused.message)
            except TimeoutError:
                return None, ("timeout", "not finished within the time limit")
            except DOMAIN_ERRORS as error:
                failure = failure_of(error)
                message = "the emotion model failed; quote the job id" if failure.status == 500 else failure.message
                return None, (failure.code, message)


async def keep_running(step: Callable[[], Awaitable[bool]], stopping: asyncio.Event, idle_s: float) -> None:
    """Repeat a step until stopping; pause when it found nothing to do, and outlive its failures
    (a database restart costs retries, not the loop)."""
    while not stopping.is_set():
        try:
            busy = await step()
        except Exception:
            log.exception("a job loop step failed; retrying")
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), idle_s)
