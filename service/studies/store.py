"""Studies and their sessions in the job store's database (SQLite, or PostgreSQL for replicas), so a
report computed after a restart, or on another replica, is the same report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.database import utcnow
from service.jobs.schema import FINISHED, RUNNING, Job
from service.jobs.store import cut_page, event_row, keyset_page
from service.options import SessionJob, SessionOrigin
from service.studies.models import StudyCreate
from service.studies.schema import ANALYSED, FAILED, QUEUED, RECEIVING, Study, StudyLink, StudySession
from service.studies.trace import Trace

T = TypeVar("T")


class ModelPinned(Exception):
    """The study's traces come from another model (name or version) than this session would use."""

    def __init__(self, pinned: tuple[str, str], more: str = "") -> None:
        super().__init__(
            f"this study's sessions are analysed with {pinned[0]}/{pinned[1]}" + (f"; {more}" if more else "")
        )
        self.pinned = pinned


@dataclass(frozen=True)
class SessionView:
    """A session as clients see it: its state follows its analysis job until a trace is recorded."""

    id: str
    job_id: str | None  # None: analysed on the viewer's device
    viewer: str | None
    offset_s: float
    created_at: datetime
    status: str
    reason: str | None
    trace: Trace | None
    models: dict | None
    attributes: dict[str, str]
    origin: SessionOrigin


class StudyStore:
    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def create(self, owner: str, new: StudyCreate) -> Study:
        study = Study(
            id=uuid.uuid4().hex,
            owner=owner,
            name=new.name,
            stimulus_duration_s=new.stimulus_duration_s,
            events=[event.model_dump() for event in new.events],
            created_at=utcnow(),
            category=new.category,
            callback_url=new.callback_url,
            target_sessions=new.target_sessions,
        )
        with self.sessions.begin() as session:
            session.add(study)
        return study

    def get(self, owner: str, study_id: str) -> Study | None:
        with self.sessions() as session:
            return session.scalars(select(Study).where(Study.id == study_id, Study.owner == owner)).first()

    def page(self, owner: str, limit: int, cursor: str | None) -> tuple[list[Study], str | None]:
        """Newest first, and the cursor of the next page; ValueError for a cursor this store did not give."""
        query = keyset_page(select(Study).where(Study.owner == owner), Study, cursor, limit, newest_first=True)
        with self.sessions() as session:
            return cut_page(list(session.scalars(query)), limit)

    def in_category(self, study: Study, most: int) -> list[Study]:
        """The owner's other studies of the study's category on the same model, newest first: its norms."""
        query = (
            select(Study)
            .where(
                Study.owner == study.owner,
                Study.category == study.category,
                Study.id != study.id,
                Study.model_name == study.model_name,
                Study.model_version == study.model_version,
            )
            .order_by(Study.created_at.desc())
            .limit(most)
        )
        with self.sessions() as session:
            return list(session.scalars(query))

    def delete(self, owner: str, study_id: str) -> list[str] | None:
        """Delete a study and every trace; its sessions' job ids (to cancel), or None if there is no such study."""
        with self.sessions.begin() as session:
            study = session.scalars(select(Study).where(Study.id == study_id, Study.owner == owner)).first()
            if study is None:
                return None
            of_study = (StudySession.study_id == study_id, StudySession.job_id.is_not(None))
            job_ids = list(session.scalars(select(StudySession.job_id).where(*of_study)))
            session.execute(delete(StudySession).where(StudySession.study_id == study_id))
            session.execute(delete(StudyLink).where(StudyLink.study_id == study_id))
            session.delete(study)
            return job_ids

    def set_stimulus(
        self, study_id: str, location: str, size: int, content_type: str, width: int, height: int, duration_s: float
    ) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(Study)
                .where(Study.id == study_id)
                .values(
                    stimulus_media=location,
                    stimulus_bytes=size,
                    stimulus_type=content_type,
                    stimulus_width=width,
                    stimulus_height=height,
                    stimulus_clip_s=duration_s,
                )
            )

    def viewer_seen(self, study_id: str, viewer: str) -> bool:
        """Whether a session of this viewer is in the study: a viewer counts once."""
        query = select(StudySession.id).where(StudySession.study_id == study_id, StudySession.viewer == viewer)
        with self.sessions() as session:
            return session.scalars(query.limit(1)).first() is not None

    def session_of(self, study_id: str, session_id: str) -> StudySession | None:
        """One of the study's sessions; None if the study has no such session."""
        with self.sessions() as session:
            row = session.get(StudySession, session_id)
            return row if row is not None and row.study_id == study_id else None

    def delete_session(self, session_id: str) -> None:
        """Erase one session and its trace (cancel its job first, so an analysis under way writes nothing)."""
        with self.sessions.begin() as session:
            session.execute(delete(StudySession).where(StudySession.id == session_id))

    def pin_model(self, study_id: str, model: tuple[str, str]) -> None:
        """Pin the study to this model if it has none yet; ModelPinned if it has another."""
        with self.sessions.begin() as session:
            session.execute(
                update(Study)
                .where(Study.id == study_id, Study.model_name.is_(None))
                .values(model_name=model[0], model_version=model[1])
            )
            study = session.get(Study, study_id)
            pinned = (study.model_name, study.model_version)
        if pinned != model:
            raise ModelPinned(pinned)

    def add_session(self, job: Job) -> StudySession | None:
        """The session a session job stands for (its options name it); None if its study is gone."""
        return self._retrying(lambda session: self._row(session, job))

    def record(self, job: Job, status: str, reason: str | None, trace: dict | None) -> None:
        """The analysis's outcome. The worker may get here before the upload's request has added the
        session row, so the row is made here if missing; a study deleted meanwhile stays deleted, and so
        does a session erased meanwhile (its job was cancelled first)."""

        def write(session: Session) -> None:
            current = session.get(Job, job.id)
            if current is None or current.status != RUNNING:
                return
            row = self._row(session, job)
            if row is not None:
                row.status, row.reason, row.trace = status, reason, trace
                self._announce(session, row)

        self._retrying(write)

    def save_device_session(self, new: StudySession, first_second: int = 0) -> str | None:
        """An on-device session's latest traces: its viewer's `receiving` session from the same link is
        updated (the first post makes it), its trace kept up to `first_second` and the new seconds
        appended (a lost progress post leaves seconds without a face until the final post); a final
        status is announced as a recorded analysis is. The session's id; None if the viewer has another
        session in the study."""

        def write(session: Session) -> str | None:
            query = select(StudySession).where(StudySession.study_id == new.study_id, StudySession.viewer == new.viewer)
            row = session.scalars(query.limit(1)).first()
            if row is not None and (row.status != RECEIVING or row.link_id != new.link_id):
                return None
            kept = Trace.from_json(row.trace) if row is not None else Trace([], [])
            trace = {**new.trace, **appended(kept, Trace.from_json(new.trace), first_second)}
            if row is None:
                new.trace = trace
                session.add(new)
                row = new
            else:
                for column in ("status", "reason", "offset_s", "visible_share", "lead_in_s", "analysed_fps"):
                    setattr(row, column, getattr(new, column))
                row.trace = trace
            if row.status != RECEIVING:
                self._announce(session, row)
            return row.id

        return self._retrying(write)

    def _announce(self, session: Session, row: StudySession) -> None:
        """The study's events for an analysed session, in the transaction that records it: the session's,
        and `study.ready` once, when the valid sessions first reach the target."""
        study = session.get(Study, row.study_id)
        if study.callback_url is None:
            return
        links = {"study": f"/v1/studies/{study.id}", "report": f"/v1/studies/{study.id}/report"}
        analysed = {
            "study_id": study.id,
            "session_id": row.id,
            "viewer": row.viewer,
            "status": row.status,
            "reason": row.reason,
            "links": links,
        }
        session.add(event_row(study.owner, study.callback_url, "study.session.analysed", analysed))
        if study.target_sessions is None or study.ready_at is not None:
            return
        valid_query = select(func.count()).where(StudySession.study_id == study.id, StudySession.status == ANALYSED)
        valid = session.scalar(valid_query)
        if valid < study.target_sessions:
            return
        became_ready = session.execute(
            update(Study).where(Study.id == study.id, Study.ready_at.is_(None)).values(ready_at=utcnow())
        )
        if became_ready.rowcount == 1:
            ready = {"study_id": study.id, "valid_sessions": valid, "target_sessions": study.target_sessions}
            session.add(event_row(study.owner, study.callback_url, "study.ready", {**ready, "links": links}))

    def _retrying(self, change: Callable[[Session], T]) -> T:
        """Run a change in a transaction; once more if the request and the worker made the row at once."""
        try:
            with self.sessions.begin() as session:
                return change(session)
        except IntegrityError:
            with self.sessions.begin() as session:
                return change(session)

    def _row(self, session: Session, job: Job) -> StudySession | None:
        options = SessionJob.model_validate(job.options)
        row = session.get(StudySession, options.session_id)
        if row is None and session.get(Study, options.study_id) is not None:
            row = StudySession(
                id=options.session_id,
                study_id=options.study_id,
                job_id=job.id,
                viewer=options.viewer,
                offset_s=options.offset_s,
                created_at=job.created_at,
                attributes=options.attributes or None,
                **options.origin.model_dump(),
            )
            session.add(row)
        return row

    def views(self, study_id: str) -> list[SessionView]:
        """Every session of a study in upload order, with its state."""
        query = self._with_job_state().where(StudySession.study_id == study_id)
        return self._views(query.order_by(StudySession.created_at, StudySession.id))

    def views_page(self, study_id: str, limit: int, cursor: str | None) -> tuple[list[SessionView], str | None]:
        """A page of `views`, and the cursor of the next; ValueError for a cursor this store did not give."""
        query = self._with_job_state().where(StudySession.study_id == study_id)
        return cut_page(self._views(keyset_page(query, StudySession, cursor, limit, newest_first=False)), limit)

    def fingerprint(self, study_id: str) -> tuple:
        """What a report depends on besides the study: every session and its state. Cheap (no traces),
        so a cached report can be checked against it on every request."""
        query = (
            select(StudySession.id, StudySession.status, Job.status)
            .outerjoin(Job, Job.id == StudySession.job_id)
            .where(StudySession.study_id == study_id)
            .order_by(StudySession.id)
        )
        with self.sessions() as session:
            return tuple(tuple(row) for row in session.execute(query))

    def view(self, session_id: str) -> SessionView | None:
        views = self._views(self._with_job_state().where(StudySession.id == session_id))
        return views[0] if views else None

    @staticmethod
    def _with_job_state() -> Select:
        return select(StudySession, Job.status, Job.error_message).outerjoin(Job, Job.id == StudySession.job_id)

    def _views(self, query: Select) -> list[SessionView]:
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [session_view(row, job_status, job_error) for row, job_status, job_error in rows]


def appended(kept: Trace, more: Trace, first_second: int) -> dict:
    """The trace's first `first_second` seconds from `kept` (without a face where it has fewer), then `more`."""
    missing = max(0, first_second - len(kept.probabilities))
    probabilities = kept.probabilities[:first_second] + [None] * missing + more.probabilities
    attentive = kept.attentive[:first_second] + [False] * missing + more.attentive
    return Trace(probabilities, attentive).to_json()


def session_view(row: StudySession, job_status: str | None, job_error: str | None) -> SessionView:
    status, reason = row.status, row.reason
    if status is None:
        if job_status is None:
            status, reason = FAILED, "the analysis job expired before it finished"
        elif job_status in FINISHED:
            status, reason = FAILED, job_error or "the analysis did not finish"
        else:
            status = QUEUED
    trace = Trace.from_json(row.trace) if row.trace else None
    return SessionView(
        id=row.id,
        job_id=row.job_id,
        viewer=row.viewer,
        offset_s=row.offset_s,
        created_at=row.created_at,
        status=status,
        reason=reason,
        trace=trace,
        models=row.trace.get("models") if row.trace else None,
        attributes=row.attributes or {},
        origin=SessionOrigin(
            source=row.source or "api",
            mode=row.mode or "upload",
            link_id=row.link_id,
            visible_share=row.visible_share,
            lead_in_s=row.lead_in_s,
            analysed_fps=row.analysed_fps,
        ),
    )
