"""The events the service sends to callback URLs, as OpenAPI 3.1 `webhooks`: what a receiver is
generated from. Each is signed as Standard Webhooks specifies (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) and shaped `{"type", "timestamp", "data"}`; a 2xx answer delivers it, 410 stops
the retries (docs/operations.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from service.schemas import JobError


class JobLinks(BaseModel):
    self: str = Field(description="GET it for the result.")


class JobEventData(BaseModel):
    job_id: str
    kind: Literal["photo", "video", "session"]
    tag: str | None
    status: Literal["succeeded", "failed", "cancelled"]
    error: JobError | None = Field(None, description="Why a job that did not succeed ended.")
    links: JobLinks


class JobEvent(BaseModel):
    type: Literal["job.succeeded", "job.failed", "job.cancelled"]
    timestamp: datetime = Field(description="When the job finished.")
    data: JobEventData


class StudyLinks(BaseModel):
    study: str
    report: str


class SessionEventData(BaseModel):
    study_id: str
    session_id: str
    viewer: str | None
    status: Literal["analysed", "excluded"]
    reason: str | None = Field(description="Why the session was excluded.")
    links: StudyLinks


class SessionEvent(BaseModel):
    type: Literal["study.session.analysed"]
    timestamp: datetime
    data: SessionEventData


class ReadyEventData(BaseModel):
    study_id: str
    valid_sessions: int
    target_sessions: int
    links: StudyLinks


class ReadyEvent(BaseModel):
    type: Literal["study.ready"]
    timestamp: datetime
    data: ReadyEventData


def document_events(app: FastAPI) -> None:
    """List the events in the OpenAPI document's `webhooks`."""

    @app.webhooks.post("job.finished")
    def job_finished(event: JobEvent) -> None:
        """A job submitted with a `callback_url` succeeded, failed or was cancelled. Redeliver it with
        POST /v1/jobs/{job_id}/webhook/redeliver."""

    @app.webhooks.post("study.session.analysed")
    def session_analysed(event: SessionEvent) -> None:
        """A session of a study with a `callback_url` was analysed (valid or excluded)."""

    @app.webhooks.post("study.ready")
    def study_ready(event: ReadyEvent) -> None:
        """A study's valid sessions reached its `target_sessions`, once."""
