"""The job table: one row per job, from upload to its webhook's last attempt."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
# Kinds of job: a photo, a clip, a study viewer's recording, a study's event to deliver.
PHOTO, VIDEO, SESSION, EVENT = "photo", "video", "session", "event"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
STATES = (QUEUED, RUNNING, *FINISHED)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="jobs_owner_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)  # a digest of the API key, or "-" without keys
    kind: Mapped[str] = mapped_column(String(8))  # "photo", "video", "session", or "event" (a study's event)
    status: Mapped[str] = mapped_column(String(16), index=True)
    tag: Mapped[str | None] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    request_digest: Mapped[str] = mapped_column(String(64))  # what was asked: media and options
    options: Mapped[dict] = mapped_column(JSON)
    filename: Mapped[str | None] = mapped_column(String(255))
    media: Mapped[str | None] = mapped_column(String(512))  # where the upload waits; None once deleted
    media_bytes: Mapped[int | None] = mapped_column(BigInteger)  # its size: what a key's storage quota counts
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims that crashed or ran: not interruptions
    interruptions: Mapped[int] = mapped_column(Integer, default=0)  # claims given back at a graceful shutdown
    # Every claim: {"started_at", "ended_at", "outcome": "running" | "finished" | "interrupted" | "lease_expired"}
    claims: Mapped[list | None] = mapped_column(JSON)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime())
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)  # the synchronous endpoint's JSON body
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_id: Mapped[str | None] = mapped_column(String(64))  # stable across retries
    webhook_event: Mapped[str | None] = mapped_column(Text)  # the exact body delivered
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_status: Mapped[int | None] = mapped_column(Integer)
    webhook_next_at: Mapped[datetime | None] = mapped_column(DateTime(), index=True)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime())
    webhook_given_up_at: Mapped[datetime | None] = mapped_column(DateTime())  # every retry failed, or 410
    webhook_target: Mapped[str | None] = mapped_column(String(300))  # scheme://host:port, see webhooks.target_of


class Usage(Base):
    """What one key used on one UTC day (service.jobs.usage): GET /v1/usage and the daily media quota."""

    __tablename__ = "usage"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date(), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    images: Mapped[int] = mapped_column(BigInteger, default=0)
    faces: Mapped[int] = mapped_column(BigInteger, default=0)  # in photos, and people followed through clips
    media_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    jobs: Mapped[int] = mapped_column(BigInteger, default=0)
    study_sessions: Mapped[int] = mapped_column(BigInteger, default=0)
