"""Jobs in the database: created once per idempotency key, claimed with leases, finished at most once.

At-least-once processing: a worker claims the oldest queued job (or one whose lease expired, its
worker gone) and renews the lease while it works. Only the lease holder can finish a job, so a
worker that lost its lease cannot write a second result. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`, so replicas never wait on each other; SQLite serialises every
transaction (BEGIN IMMEDIATE, see service.jobs.database).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import Engine, Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from service.config import QuotaSettings
from service.jobs.database import as_utc, utcnow
from service.jobs.schema import CANCELLED, EVENT, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED, Job
from service.jobs.webhooks import target_of

T = TypeVar("T")


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different request."""


class QuotaExceeded(Exception):
    """The key has used what its quota allows (429): jobs queued, upload bytes waiting, media seconds today.
    Room comes back as its jobs finish (retry_after_s is a guess), or at midnight UTC for media."""

    def __init__(self, limit: str, message: str, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.limit, self.retry_after_s = limit, retry_after_s


class NoEvent(Exception):
    """A job with no event to redeliver: it has no callback URL, or has not finished."""


class EventPending(Exception):
    """A job whose event is still being delivered: it is retried on its own schedule."""


@dataclass(frozen=True)
class NewJob:
    owner: str
    kind: str
    options: dict
    request_digest: str
    filename: str | None = None
    tag: str | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


def iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def ended_claim(job: Job, outcome: str, now: datetime) -> None:
    """Close the job's running claim, if it has one, with how it ended."""
    if job.claims and job.claims[-1]["outcome"] == "running":
        job.claims = [*job.claims[:-1], {**job.claims[-1], "ended_at": iso(now), "outcome": outcome}]


def event_body(job: Job) -> str:
    """The webhook event of a finished job, in the Standard Webhooks envelope: where to fetch the job, not
    the result itself, and why a job that did not succeed ended (its error code and message)."""
    data = {"job_id": job.id, "kind": job.kind, "tag": job.tag, "status": job.status}
    if job.error_code:
        data["error"] = {"code": job.error_code, "message": job.error_message}
    data["links"] = {"self": f"/v1/jobs/{job.id}"}
    return envelope(f"job.{job.status}", job.finished_at, data)


def envelope(event_type: str, moment: datetime, data: dict) -> str:
    """One event as Standard Webhooks recommends: its type, when it happened, and its data."""
    body = {"type": event_type, "timestamp": iso(moment), "data": data}
    return json.dumps(body, separators=(",", ":"))


# A row of this kind is an event only: finished when written, it carries one webhook (a study's event),
# and the dispatcher delivers it with the same signature, schedule, limits and retention as a job's.
STUDY_SESSION = "session"  # a study session's analysis (service.studies.sessions registers the kind)


def owned_job(owner: str, job_id: str) -> Select:
    """One of the key's jobs, as its routes see them (a study's event rows are not jobs)."""
    return select(Job).where(Job.id == job_id, Job.owner == owner, Job.kind != EVENT)


def event_row(owner: str, url: str, event_type: str, data: dict) -> Job:
    """A finished row carrying one signed event, due now, in the Standard Webhooks shape."""
    now = utcnow()
    row_id = uuid.uuid4().hex
    return Job(
        id=row_id,
        owner=owner,
        kind=EVENT,
        status=SUCCEEDED,
        request_digest="",
        options={},
        created_at=now,
        finished_at=now,
        attempts=0,
        callback_url=url,
        webhook_id=f"msg_{row_id}",
        webhook_event=envelope(event_type, now, data),
        webhook_attempts=0,
        webhook_next_at=now,
        webhook_target=target_of(url),
    )


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.skip_locked = engine.dialect.name == "postgresql"

    def _locking(self, query: Select) -> Select:
        return query.with_for_update(skip_locked=True) if self.skip_locked else query

    def create(
        self,
        new: NewJob,
        size: int,
        save_media: Callable[[str], str],
        drop_media: Callable[[str], None],
        quota: QuotaSettings | None = None,
    ) -> tuple[Job, bool]:
        """The job for this request: a new one (True), or the one its idempotency key already made (False,
        whatever the quota). QuotaExceeded when the key's queued jobs or their uploads are at its quota."""
        if new.idempotency_key is not None and (existing := self._by_key(new)) is not None:
            return existing, False
        if quota is not None:
            self._check_quota(new.owner, size, quota)
        job_id = uuid.uuid4().hex
        media = save_media(job_id)
        job = Job(
            id=job_id,
            owner=new.owner,
            kind=new.kind,
            status=QUEUED,
            tag=new.tag,
            idempotency_key=new.idempotency_key,
            request_digest=new.request_digest,
            options=new.options,
            filename=new.filename,
            media=media,
            media_bytes=size,
            created_at=utcnow(),
            attempts=0,
            interruptions=0,
            callback_url=new.callback_url,
            webhook_attempts=0,
        )
        try:
            with self.sessions.begin() as session:
                session.add(job)
        except IntegrityError:  # the same key, submitted concurrently: the other one won
            drop_media(media)
            existing = self._by_key(new)
            if existing is None:
                raise
            return existing, False
        return job, True

    def _check_quota(self, owner: str, size: int, quota: QuotaSettings) -> None:
        """Counted from the jobs table, so every replica sees the same use (a burst racing across replicas
        can pass a limit by the few jobs submitted at the same moment)."""
        waiting = and_(Job.owner == owner, Job.status.in_((QUEUED, RUNNING)), Job.kind != EVENT)
        use = select(func.count(), func.coalesce(func.sum(Job.media_bytes), 0)).where(waiting)
        with self.sessions() as session:
            jobs, stored = session.execute(use).one()
        if quota.queued_jobs and jobs >= quota.queued_jobs:
            message = f"this key has {jobs} jobs queued or running: its quota (EMOTION_QUOTA_QUEUED_JOBS)"
            raise QuotaExceeded("queued_jobs", message)
        if quota.stored_bytes and stored + size > quota.stored_bytes:
            over = f"{stored + size} bytes, over its quota of {quota.stored_bytes} (EMOTION_QUOTA_STORED_BYTES)"
            raise QuotaExceeded("stored_bytes", f"this key's waiting uploads would hold {over}")

    def _by_key(self, new: NewJob) -> Job | None:
        existing = self.by_key(new.owner, new.idempotency_key)
        if existing is not None and existing.request_digest != new.request_digest:
            raise IdempotencyConflict(new.idempotency_key)
        return existing

    def by_key(self, owner: str, idempotency_key: str | None) -> Job | None:
        """The job an idempotency key made, if any."""
        if idempotency_key is None:
            return None
        with self.sessions() as session:
            query = select(Job).where(Job.owner == owner, Job.idempotency_key == idempotency_key)
            return session.scalars(query).first()

    def get(self, owner: str, job_id: str) -> Job | None:
        with self.sessions() as session:
            query = owned_job(owner, job_id)
            return session.scalars(query).first()

    def page(
        self, owner: str, status: str | None, tag: str | None, limit: int, cursor: str | None, kind: str | None = None
    ) -> Page:
        """Newest first; the cursor is where the previous page ended. Without a kind, the jobs the key
        submitted itself: not the analyses of its study sessions (kind "session"), nor study events."""
        query = select(Job).where(Job.owner == owner, Job.kind != EVENT)
        query = query.where(Job.kind == kind) if kind else query.where(Job.kind != STUDY_SESSION)
        if status:
            query = query.where(Job.status == status)
        if tag:
            query = query.where(Job.tag == tag)
        query = keyset_page(query, Job, cursor, limit, newest_first=True)
        with self.sessions() as session:
            return Page(*cut_page(list(session.scalars(query)), limit))

    def cancel(self, owner: str, job_id: str) -> Job | None:
        """Cancel a queued or running job and drop its result; a finished job is returned unchanged."""
        with self.sessions.begin() as session:
            query = owned_job(owner, job_id)
            job = session.scalars(self._locking(query)).first()
            if job is None or job.status in FINISHED:
                return job
            self._end(job, CANCELLED, ("cancelled", "cancelled by the client"))
            return job

    def claim(self, worker: str, lease_s: float, max_attempts: int) -> Job | None:
        """The oldest job to work on, leased to this worker; jobs out of attempts fail on the way."""
        while True:
            with self.sessions.begin() as session:
                now = utcnow()
                claimable = or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.lease_expires_at < now))
                query = self._locking(select(Job).where(claimable).order_by(Job.created_at).limit(1))
                job = session.scalars(query).first()
                if job is None:
                    return None
                if job.attempts >= max_attempts:
                    message = f"its worker stopped {job.attempts} times before finishing; not retried"
                    self._end(job, FAILED, ("attempts_exhausted", message))
                    continue
                ended_claim(job, "lease_expired", now)  # a claim still running here crashed or hung
                job.status, job.lease_owner = RUNNING, worker
                job.lease_expires_at = now + timedelta(seconds=lease_s)
                job.attempts += 1
                job.started_at = now  # this claim's start: how long the job has run is now - started_at
                job.claims = [*(job.claims or []), {"started_at": iso(now), "ended_at": None, "outcome": "running"}]
                return job

    def release(self, job_id: str, worker: str) -> bool:
        """Give a job this worker holds back to the queue at a graceful shutdown: the claim is recorded as
        an interruption and costs no attempt. False if the worker no longer holds it."""
        with self.sessions.begin() as session:
            query = select(Job).where(Job.id == job_id, Job.lease_owner == worker, Job.status == RUNNING)
            job = session.scalars(self._locking(query)).first()
            if job is None:
                return False
            ended_claim(job, "interrupted", utcnow())
            job.status, job.lease_owner, job.lease_expires_at = QUEUED, None, None
            job.attempts -= 1
            job.interruptions += 1
            return True

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend this worker's lease; False when it no longer holds the job (cancelled, or taken over)."""
        with self.sessions.begin() as session:
            renewed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == worker, Job.status == RUNNING)
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            )
            return renewed.rowcount == 1

    def finish(
        self, job_id: str, worker: str, result: str | None = None, error: tuple[str, str] | None = None
    ) -> Job | None:
        """Record the outcome, if this worker still holds the job; otherwise None, and nothing is written."""
        with self.sessions.begin() as session:
            query = select(Job).where(Job.id == job_id, Job.lease_owner == worker, Job.status == RUNNING)
            job = session.scalars(self._locking(query)).first()
            if job is None:
                return None
            self._end(job, SUCCEEDED if error is None else FAILED, error)
            job.result = result
            return job

    def _end(self, job: Job, status: str, error: tuple[str, str] | None = None) -> None:
        """A terminal state: the lease ends, the media is to be deleted, the webhook (if any) is due and says
        why a job that did not succeed ended."""
        job.status, job.finished_at = status, utcnow()
        job.lease_owner = job.lease_expires_at = None
        ended_claim(job, "finished", job.finished_at)
        job.result = None
        if error is not None:
            job.error_code, job.error_message = error
        if job.callback_url:
            job.webhook_id = f"msg_{job.id}"
            job.webhook_event = event_body(job)
            job.webhook_next_at = job.finished_at
            job.webhook_target = target_of(job.callback_url)

    def media_done(self, job_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(media=None))

    def due_webhooks(self, in_flight: dict[str, int], per_target: int, most: int, lease_s: float) -> list[Job]:
        """Up to `most` webhooks to deliver now, oldest first, no target above `per_target` counting the
        deliveries already in flight here, each held for `lease_s` so no other dispatcher sends it meanwhile."""
        full = [target for target, count in in_flight.items() if count >= per_target]
        with self.sessions.begin() as session:
            now = utcnow()
            query = select(Job).where(Job.webhook_next_at <= now)
            if full:
                query = query.where(or_(Job.webhook_target.is_(None), Job.webhook_target.not_in(full)))
            candidates = session.scalars(self._locking(query.order_by(Job.webhook_next_at).limit(4 * most)))
            chosen, taken = [], dict(in_flight)
            for job in candidates:
                if len(chosen) == most:
                    break
                if taken.get(job.webhook_target, 0) < per_target:
                    taken[job.webhook_target] = taken.get(job.webhook_target, 0) + 1
                    job.webhook_next_at = now + timedelta(seconds=lease_s)
                    chosen.append(job)
            return chosen

    def record_webhook(self, job_id: str, status: int | None, delivered: bool, next_at: datetime | None) -> None:
        """One attempt's outcome: delivered, due again at `next_at`, or (neither) given up."""
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            job.webhook_attempts += 1
            job.webhook_last_status = status
            job.webhook_next_at = next_at
            if delivered:
                job.webhook_delivered_at = utcnow()
            elif next_at is None:
                job.webhook_given_up_at = utcnow()

    def redeliver(self, owner: str, job_id: str) -> Job | None:
        """Send a finished job's event again, now, with the same webhook-id (receivers deduplicate by it) and
        a fresh retry schedule; None if the key has no such job."""
        with self.sessions.begin() as session:
            query = owned_job(owner, job_id)
            job = session.scalars(self._locking(query)).first()
            if job is None:
                return None
            if job.webhook_event is None:
                raise NoEvent("this job has no event to send: it has no callback_url, or has not finished")
            if job.webhook_next_at is not None:
                raise EventPending("this job's event is being delivered; see webhook.next_attempt_at")
            job.webhook_next_at, job.webhook_attempts = utcnow(), 0
            job.webhook_delivered_at = job.webhook_given_up_at = job.webhook_last_status = None
            return job

    def expired(self, before: datetime) -> list[Job]:
        """Finished before the cutoff, with no webhook still to deliver (its retries finish first)."""
        with self.sessions() as session:
            query = select(Job).where(Job.status.in_(FINISHED), Job.finished_at < before, Job.webhook_next_at.is_(None))
            return list(session.scalars(query))

    def media_locations(self) -> set[str]:
        """Every upload a job still owns, to tell orphans in the media store."""
        with self.sessions() as session:
            return set(session.scalars(select(Job.media).where(Job.media.is_not(None))))

    def delete(self, job_ids: list[str]) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(Job).where(Job.id.in_(job_ids)))

    def counts(self) -> dict[str, int]:
        """Jobs by state, for the metrics."""
        with self.sessions() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            return {status: count for status, count in rows}


class Keyed(Protocol):
    """A row paged by when it was made, its id breaking ties: jobs, studies, sessions."""

    created_at: datetime
    id: str


def encode_cursor(row: Keyed) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on a cursor this store did not write."""
    created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    return datetime.fromisoformat(created), row_id


def cut_page(rows: list[T], limit: int) -> tuple[list[T], str | None]:
    """A page's rows and the cursor of the next page, from `keyset_page`'s one row too many."""
    return rows[:limit], encode_cursor(rows[limit - 1]) if len(rows) > limit else None


def keyset_page(query: Select, model: type, cursor: str | None, limit: int, newest_first: bool) -> Select:
    """The query's page after `cursor`, in (created_at, id) order, one row more than `limit` (to tell a next page)."""
    created, row_id = model.created_at, model.id
    if cursor:
        at, after = decode_cursor(cursor)
        if newest_first:
            query = query.where(or_(created < at, and_(created == at, row_id < after)))
        else:
            query = query.where(or_(created > at, and_(created == at, row_id > after)))
    order = (created.desc(), row_id.desc()) if newest_first else (created, row_id)
    return query.order_by(*order).limit(limit + 1)
