"""The job queue as a process holds it: the job store, where uploads wait, the settings and metrics; and
what a kind of job answers with.

Jobs are generic: each kind ("photo", "video", "session", ...) registers an answer, a coroutine from
the job and its upload to the result's JSON, and the process's composition root (service.process)
hands the registry to the workers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from service.config import Settings
from service.jobs.database import open_database
from service.jobs.media import MediaStore, open_media_store
from service.jobs.schema import CANCELLED, Job
from service.jobs.store import JobStore
from service.jobs.usage import UsageMeter
from service.ops.metrics import Metrics
from service.ops.quotas import KeyQuotas

# What answers a job of one kind: the job and its upload in, the result's JSON out.
KindAnswer = Callable[[Job, bytes], Awaitable[str]]


@dataclass
class Jobs:
    """What the job routes and workers share in a process."""

    store: JobStore
    media: MediaStore
    settings: Settings
    metrics: Metrics
    quotas: KeyQuotas  # the process's per-key limits, shared with the API's request rate
    usage: UsageMeter  # what each key used per day, counted where the work happens

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
    store, media = JobStore(open_database(url)), open_media_store(settings.media_store)
    usage = UsageMeter(store.engine, settings.quotas.media_s_per_day)
    return Jobs(store, media, settings, metrics, KeyQuotas(settings.quotas, metrics), usage)


class JobRefused(Exception):
    """A job that cannot be done as asked: it fails with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
