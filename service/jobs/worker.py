"""Job workers: claim a job, run it through the synchronous endpoint's own answer, record the
outcome once; beside them, the webhook dispatcher and the retention sweep.

They run inside the API process (`EMOTION_JOB_WORKERS`, default 1) or alone in
`python -m service worker`, so Kubernetes can scale them apart from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from service.answers import VideoAnswer, analyse_photos, opened_clip, photo_answer
from service.config import Settings
from service.inference.errors import ImageRejected, InferenceFailed, UnknownModel
from service.jobs.database import open_database, utcnow
from service.jobs.media import MediaStore, open_media_store
from service.jobs.schema import CANCELLED, STATES, Job
from service.jobs.store import JobStore
from service.jobs.webhooks import Attempt, WebhookSender, next_attempt, without_query
from service.ops.admission import Overloaded
from service.ops.allocator import returning_free_pages
from service.ops.metrics import Metrics
from service.runtime import Runtime, load_runtime, warm_up

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 15.0


@dataclass
class Jobs:
    """What the job routes and workers share in a process."""

    store: JobStore
    media: MediaStore
    settings: Settings
    metrics: Metrics

    def drop_media(self, job: Job) -> None:
        """A job has ended (or was cancelled): its upload goes. Blocking: run it off the event loop."""
        if job.media:
            self.media.delete(job.media)
            self.store.media_done(job.id)

    def cancel(self, owner: str, job_id: str) -> Job | None:
        """Cancel a queued or running job and delete its upload; a finished job is returned unchanged, and
        None means there is no such job. Blocking: run it off the event loop."""
        job = self.store.cancel(owner, job_id)
        if job is not None and job.status == CANCELLED and job.media:  # cancelled just now
            self.drop_media(job)
            self.metrics.jobs.labels(CANCELLED).inc()
        return job


def open_jobs(settings: Settings, metrics: Metrics) -> Jobs:
    """The job store (migrated) and the media store the settings name. Blocking: run it off the event loop."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Jobs(JobStore(open_database(url)), open_media_store(settings.media_store), settings, metrics)


class JobRefused(Exception):
    """A job that cannot be done as asked: it fails with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# What answers a job of a kind other than "photo" and "video" (a study's session): its result's JSON.
KindAnswer = Callable[[Runtime, Jobs, Job, bytes], Awaitable[str]]


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobWorker:
    def __init__(self, jobs: Jobs, runtime: Runtime, kinds: Mapping[str, KindAnswer]) -> None:
        self.jobs, self.runtime, self.kinds = jobs, runtime, kinds
        self.name = worker_name()
        self.settings = jobs.settings

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until `stopping` is set; a job in hand is finished first (its lease covers a crash)."""
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
        """(the answer's JSON, None), or (None, (error code, message)) as the synchronous endpoint would refuse."""
        try:
            data = await asyncio.to_thread(self.jobs.media.read, job.media)
        except OSError:
            return None, ("media_missing", "the upload is no longer in the media store")
        while True:
            try:
                return await self._answer(job, data), None
            except Overloaded:  # the process is full of synchronous work: wait, the lease is renewed
                await asyncio.sleep(1)
            except (ImageRejected, JobRefused) as rejection:
                return None, (rejection.code, rejection.message)
            except UnknownModel as unknown:
                return None, ("unknown_model", unknown.message)
            except InferenceFailed:
                return None, ("inference_failed", "the emotion model failed; quote the job id")
            except TimeoutError:
                return None, ("timeout", "not finished within the time limit")

    async def _answer(self, job: Job, data: bytes) -> str:
        if job.kind in self.kinds:
            return await self.kinds[job.kind](self.runtime, self.jobs, job, data)
        options = job.options
        emotion = self.runtime.emotion(options.get("model"))
        if job.kind == "photo":
            analysed = await analyse_photos(self.runtime, emotion, [data])
            return photo_answer(self.runtime, emotion, [job.filename], analysed, job.id).model_dump_json()
        clip = await opened_clip(self.runtime, data, options["fps"])
        answer = VideoAnswer(
            self.runtime, emotion, clip, (options["fps"], options["smoothing"]), job.filename, job.id, True
        )
        return (await answer.response()).model_dump_json()


class WebhookDispatcher:
    """Delivers due webhooks concurrently: up to `webhook_concurrency` at once, at most
    `webhook_target_concurrency` to one receiver, so a slow receiver delays only its own events."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        settings = jobs.settings
        self.sender = WebhookSender(
            settings.webhook_secret.get_secret_value(), settings.webhook_allow_private, settings.webhook_timeout_s
        )
        self.delays = settings.webhook_retry_delays()
        self.in_flight: dict[str, int] = {}  # deliveries under way, by target
        self.deliveries: set[asyncio.Task] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until stopping, then let the deliveries under way end (each is bounded by the webhook
        timeout); cancelled, as on a shutdown past its timeout, they are cancelled too and left to their lease."""
        try:
            await keep_running(self.step, stopping, self.jobs.settings.job_poll_s)
            if self.deliveries:
                await asyncio.wait(self.deliveries)
        finally:
            for delivery in self.deliveries:
                delivery.cancel()

    async def step(self) -> bool:
        """Start the due deliveries there is room for; False when none was started."""
        settings = self.jobs.settings
        room = settings.webhook_concurrency - len(self.deliveries)
        if room <= 0:
            return False
        due = await asyncio.to_thread(
            self.jobs.store.due_webhooks,
            self.in_flight,
            settings.webhook_target_concurrency,
            room,
            2 * settings.webhook_timeout_s,
        )
        for job in due:
            target = job.webhook_target or "-"
            self.in_flight[target] = self.in_flight.get(target, 0) + 1
            delivery = asyncio.create_task(self.deliver(job))
            self.deliveries.add(delivery)
            delivery.add_done_callback(lambda task, target=target: self._ended(task, target))
        return bool(due)

    def _ended(self, delivery: asyncio.Task, target: str) -> None:
        self.deliveries.discard(delivery)
        self.in_flight[target] -= 1
        if not self.in_flight[target]:
            del self.in_flight[target]

    async def deliver(self, job: Job) -> None:
        """One attempt, recorded whatever happened: every failure counts against the schedule."""
        try:
            attempt = await self.sender.send(job.callback_url, job.webhook_id, job.webhook_event)
        except Exception:
            log.exception("webhook attempt for job %s failed unexpectedly", job.id)
            attempt = Attempt(None, delivered=False)
        next_at = next_attempt(self.delays, job.webhook_attempts + 1, attempt)
        await asyncio.to_thread(self.jobs.store.record_webhook, job.id, attempt.status, attempt.delivered, next_at)
        outcome = "delivered" if attempt.delivered else "retrying" if next_at else "given_up"
        if outcome == "given_up":
            log.warning(
                "webhook for job %s to %s given up after %d attempts (last status %s)",
                job.id,
                without_query(job.callback_url),
                job.webhook_attempts + 1,
                attempt.status,
            )
        self.jobs.metrics.webhook_deliveries.labels(outcome).inc()


async def sweep(jobs: Jobs) -> bool:
    """Delete finished jobs past retention (with any media left), and bring the state gauges up to date."""
    cutoff = utcnow() - timedelta(hours=jobs.settings.job_retention_h)
    expired = await asyncio.to_thread(jobs.store.expired, cutoff)
    for job in expired:
        if job.media:
            await asyncio.to_thread(jobs.media.delete, job.media)
    if expired:
        await asyncio.to_thread(jobs.store.delete, [job.id for job in expired])
    counts = await asyncio.to_thread(jobs.store.counts)
    for state in STATES:
        jobs.metrics.jobs_in_state.labels(state).set(counts.get(state, 0))
    return False  # nothing waits: the next sweep comes after the pause


async def sweep_orphans(jobs: Jobs) -> bool:
    """Delete uploads no job owns: their request died after saving the upload and before storing its job
    (a crash, a kill -9). Only those older than `media_orphan_age_s`, so an upload being submitted right now,
    on this replica or another, is never taken for one."""
    old = await asyncio.to_thread(jobs.media.older_than, jobs.settings.media_orphan_age_s)
    if old:
        owned = await asyncio.to_thread(jobs.store.media_locations)
        orphans = [location for location in old if location not in owned]
        for location in orphans:
            await asyncio.to_thread(jobs.media.delete, location)
        if orphans:
            log.warning(
                "deleted %d uploads that no job owned (their requests ended before the job was stored)", len(orphans)
            )
    return False  # nothing waits: the next sweep comes after the pause


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


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, metrics: Metrics, workers: int, kinds: Mapping[str, KindAnswer]
) -> AsyncIterator[tuple[Runtime, Jobs]]:
    """Models loaded and warmed, their batchers and `workers` job workers (for photos, clips and the
    given kinds) running, and the heap's free pages returned to the kernel (service.ops.allocator); on exit
    the workers finish the jobs in hand (up to the shutdown timeout), then the batchers stop. The API's
    lifespan and `python -m service worker` both run inside this."""
    runtime = load_runtime(settings, metrics)
    await asyncio.to_thread(warm_up, runtime)
    for served in runtime.emotion_models.values():
        served.batcher.start()
    jobs = await asyncio.to_thread(open_jobs, settings, metrics)
    runner = JobRunner(jobs, runtime, workers, kinds)
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

    def __init__(self, jobs: Jobs, runtime: Runtime, workers: int, kinds: Mapping[str, KindAnswer]) -> None:
        self.jobs, self.runtime, self.workers, self.kinds = jobs, runtime, workers, kinds
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loops = [JobWorker(self.jobs, self.runtime, self.kinds).run(self.stopping) for _ in range(self.workers)]
        every_s = min(SWEEP_EVERY_S, self.jobs.settings.job_retention_h * 3600 / 2)
        sweeping = keep_running(lambda: sweep(self.jobs), self.stopping, every_s)
        orphans = keep_running(lambda: sweep_orphans(self.jobs), self.stopping, self.jobs.settings.media_orphan_age_s)
        loops += [WebhookDispatcher(self.jobs).run(self.stopping), sweeping, orphans]
        self.tasks = [asyncio.create_task(loop) for loop in loops]

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
