"""The study tables, in the job store's database: a study, and one row per viewer's session holding
only that viewer's per-second trace (never the recording, never a face)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.jobs.schema import Base

QUEUED, ANALYSED, EXCLUDED, FAILED = "queued", "analysed", "excluded", "failed"
RECEIVING = "receiving"  # on-device: traces arriving while the viewer watches


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (Index("ix_studies_owner_category", "owner", "category"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(256))
    stimulus_duration_s: Mapped[float] = mapped_column(Float)
    events: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    # Pinned by the first session: every trace of a study comes from the same model version.
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))  # the norms compare studies of one category
    # Study events: sent here, signed as job webhooks are; `ready_at` once `target_sessions` viewers count.
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    target_sessions: Mapped[int | None] = mapped_column(Integer)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime())
    # The ad itself, kept in the stimulus store until the study is deleted: what a link plays.
    stimulus_media: Mapped[str | None] = mapped_column(String(512))
    stimulus_bytes: Mapped[int | None] = mapped_column(Integer)
    stimulus_type: Mapped[str | None] = mapped_column(String(64))
    stimulus_width: Mapped[int | None] = mapped_column(Integer)
    stimulus_height: Mapped[int | None] = mapped_column(Integer)
    stimulus_clip_s: Mapped[float | None] = mapped_column(Float)


class StudyLink(Base):
    """A participant link: a signed token names it, and it can be revoked or run out."""

    __tablename__ = "study_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[str] = mapped_column(String(32), ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(24))
    return_url: Mapped[str | None] = mapped_column(String(2048))
    max_sessions: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())
    # What respondents did with it: the page reports every ending but a completed session.
    opened: Mapped[int] = mapped_column(Integer, default=0)
    declined: Mapped[int] = mapped_column(Integer, default=0)
    screened_out: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)


class StudySession(Base):
    __tablename__ = "study_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[str] = mapped_column(String(32), ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32))  # None: analysed on the viewer's device
    viewer: Mapped[str | None] = mapped_column(String(256))
    offset_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    # Set once analysed: "analysed" or "excluded" (with the reason), or "failed" by the analysis itself.
    status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    trace: Mapped[dict | None] = mapped_column(JSON)
    # The respondent's own answers (age band, market...), never inferred from the face: segments.
    attributes: Mapped[dict | None] = mapped_column(JSON)
    # Where the session came from: "api" (an upload) or "link" (a participant link, which measures the
    # offset and how much of the ad was watched with the tab visible).
    source: Mapped[str | None] = mapped_column(String(8))
    mode: Mapped[str | None] = mapped_column(String(16))
    link_id: Mapped[str | None] = mapped_column(String(32), index=True)
    visible_share: Mapped[float | None] = mapped_column(Float)
    lead_in_s: Mapped[float | None] = mapped_column(Float)
    analysed_fps: Mapped[float | None] = mapped_column(Float)
