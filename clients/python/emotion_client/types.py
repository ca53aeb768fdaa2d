"""The shapes the service answers with, as TypedDicts: a type checker follows the fields, and the
values are the JSON the service sent (times as ISO 8601 strings). The full schemas are at /docs."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Box(TypedDict):
    x: float
    y: float
    width: float
    height: float


class Face(TypedDict):
    box: Box
    landmarks: dict[str, Any]
    head_pose: dict[str, float] | None  # yaw, pitch, roll in degrees
    detection_score: float
    emotions: dict[str, float]  # the seven FER-2013 classes, summing to 1: visible expression, not feelings
    dominant_emotion: str


class ImageResult(TypedDict):
    filename: str | None
    width: int
    height: int
    faces: list[Face]


class Prediction(TypedDict):
    request_id: str
    models: dict[str, Any]
    images: list[ImageResult]


class ClipResult(TypedDict):
    request_id: str
    models: dict[str, Any]
    video: dict[str, Any]
    tracks: list[dict[str, Any]]
    summary: dict[str, Any]


class JobWebhook(TypedDict):
    url: str
    status: Literal["pending", "delivered", "failed", "gave_up"]
    attempts: int
    last_status: int | None
    next_attempt_at: str | None


class Job(TypedDict):
    job_id: str
    status: JobState
    tag: str | None
    created_at: str
    kind: NotRequired[Literal["photo", "video", "session"]]
    attempts: NotRequired[int]
    error: NotRequired[dict[str, str] | None]
    webhook: NotRequired[JobWebhook | None]
    result: NotRequired[dict[str, Any] | None]
    replayed: NotRequired[bool]  # set by the client: the Idempotency-Key had made this job before


class WebhookEvent(TypedDict):
    type: str  # "job.succeeded", "job.failed", "study.session.analysed", "study.ready", ...
    timestamp: str
    data: dict[str, Any]


class Study(TypedDict):
    study_id: str
    name: str
    stimulus_duration_s: float
    events: list[dict[str, Any]]
    created_at: str
    category: str | None
    target_sessions: int | None


class Link(TypedDict):
    link_id: str
    url: str  # the participant page's path: append ?viewer=ID
    mode: Literal["upload", "on-device", "on-device-or-upload"]
    expires_at: str
    sessions: int


class UsageFigures(TypedDict):
    requests: int
    images: int
    faces: int
    media_seconds: float
    jobs: int
    study_sessions: int


class UsageDay(UsageFigures):
    day: str


class Usage(TypedDict):
    days: list[UsageDay]
    total: UsageFigures
