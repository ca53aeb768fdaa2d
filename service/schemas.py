"""Request and response models: the public API contract, shown as-is at /docs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Emotion = Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
DetectionKind = Annotated[
    Literal["full", "region"],
    Field(description="How the face was found: a full-frame detection, or one around where it was tracked."),
]


class Box(BaseModel):
    x: float = Field(description="Left edge, in original image pixels.")
    y: float = Field(description="Top edge, in original image pixels.")
    width: float
    height: float


class Point(BaseModel):
    x: float
    y: float


class Landmarks(BaseModel):
    """Five points in original image pixels; left and right as seen in the image."""

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point


class EmotionScores(BaseModel):
    """Probabilities of the seven FER-2013 emotions; they sum to 1. An estimate of the face's visible
    expression, not of what the person feels; not for decisions about individuals (employment,
    education, law enforcement, credit)."""

    angry: float
    disgust: float
    fear: float
    happy: float
    sad: float
    surprise: float
    neutral: float


class HeadPose(BaseModel):
    """Degrees. From the five landmarks (yaw and roll within a few degrees, pitch roughly), or, with
    `descriptors=true`, fitted to the whole face mesh."""

    yaw: float = Field(description="Positive when the face turns toward the image's right.")
    pitch: float = Field(description="Positive when the face tilts up.")
    roll: float = Field(description="Positive when the face leans clockwise in the image.")


class Actions(BaseModel):
    """What the face does, each from 0 to 1: the mean of the blendshapes named (docs/api.md#descriptors)."""

    smile: float = Field(description="mouthSmileLeft, mouthSmileRight.")
    brow_furrow: float = Field(description="browDownLeft, browDownRight.")
    brow_raise: float = Field(description="browInnerUp, browOuterUpLeft, browOuterUpRight.")
    eye_closure: float = Field(description="eyeBlinkLeft, eyeBlinkRight.")
    jaw_open: float = Field(description="jawOpen.")


class Gaze(BaseModel):
    """Where the eyes point relative to the camera, in degrees: the head's turn plus the eyes' own."""

    yaw: float = Field(description="Positive toward the image's right.")
    pitch: float = Field(description="Positive upward.")


class Face(BaseModel):
    box: Box
    landmarks: Landmarks
    head_pose: HeadPose | None = Field(None, description="Null when the landmarks are degenerate.")
    detection_score: float = Field(ge=0, le=1)
    emotions: EmotionScores
    dominant_emotion: Emotion
    descriptors: dict[str, float] | None = Field(
        None,
        description="With descriptors=true: MediaPipe's 52 blendshape scores (0 to 1) by their ARKit-style names "
        "(mouthSmileLeft, browDownRight, eyeBlinkLeft, jawOpen, ...; `_neutral` is the model's own). What the face "
        "visibly does, not what the person feels.",
    )
    actions: Actions | None = Field(None, description="With descriptors=true: five descriptors derived from those.")
    gaze: Gaze | None = Field(None, description="With descriptors=true.")


class ImageResult(BaseModel):
    filename: str | None = Field(None, description="The uploaded file name, if the client sent one.")
    width: int = Field(description="Width after applying EXIF orientation.")
    height: int
    faces: list[Face] = Field(description="Every face found, highest detection score first.")


class ModelRef(BaseModel):
    name: str
    version: str


# The models behind an answer: the face mesh's two graphs too when it has descriptors.
AnswerModels = dict[Literal["detector", "emotion", "face_landmarks", "face_blendshapes"], ModelRef]


class PredictResponse(BaseModel):
    request_id: str
    models: AnswerModels
    images: list[ImageResult] = Field(description="One entry per uploaded file, in upload order.")


class TrackedFace(Face):
    """A face in a frame of a clip or stream: `emotions` smoothed over its track, `raw_emotions` this frame alone."""

    track_id: int = Field(description="The same number for the same person while they stay on screen.")
    raw_emotions: EmotionScores
    detection: DetectionKind = "full"


class TimelineEntry(Face):
    time_ms: float = Field(description="Frame time from the start of the clip.")
    raw_emotions: EmotionScores
    detection: DetectionKind = "full"


class Peak(BaseModel):
    time_ms: float
    probability: float = Field(description="The smoothed probability at that moment.")


class TrackActions(BaseModel):
    """A person's actions over a clip analysed with descriptors (docs/api.md#descriptors)."""

    means: Actions = Field(description="Each action's mean over the track's frames.")
    blinks_ms: list[float] = Field(description="When each blink began: eye closure briefly above its own level.")
    blinks_per_min: float | None = Field(description="Blinks over the track's span; null for a single frame.")


class TrackResult(BaseModel):
    track_id: int
    first_ms: float
    last_ms: float
    frames: int = Field(description="Analysed frames in which this person's face was found.")
    emotions: EmotionScores = Field(description="Mean of the raw distributions over the track.")
    dominant_emotion: Emotion
    peaks: dict[Emotion, Peak] = Field(description="For each emotion, the moment its smoothed probability peaked.")
    timeline: list[TimelineEntry] | None = Field(None, description="Every analysed frame with this face.")
    actions: TrackActions | None = Field(None, description="With `descriptors=true` only.")


class VideoInfo(BaseModel):
    filename: str | None = None
    width: int = Field(description="Frame width after the clip's rotation metadata is applied.")
    height: int
    fps: float = Field(description="The clip's own frame rate, from its container.")
    duration_ms: float
    frames_analysed: int
    partial: bool = Field(False, description="True when the frames ended before the clip's declared end.")
    partial_reason: str | None = Field(None, description="Why the clip ended early: truncated or corrupt data.")


class VideoSummary(BaseModel):
    emotions: EmotionScores = Field(description="Mean over every face in every analysed frame.")
    dominant_share: EmotionScores = Field(description="Share of face-frames whose (smoothed) dominant emotion it is.")
    people: int = Field(description="Number of tracks.")


class VideoResponse(BaseModel):
    request_id: str
    models: AnswerModels
    video: VideoInfo
    tracks: list[TrackResult] = Field(description="One per person, in order of first appearance.")
    summary: VideoSummary


class VideoFrame(BaseModel):
    """One line of the NDJSON form: an analysed frame."""

    time_ms: float
    faces: list[TrackedFace]


class ModelInfo(BaseModel):
    role: Literal["detector", "emotion", "face_landmarks", "face_blendshapes"]
    name: str
    version: str
    default: bool = Field(False, description="The emotion model used when a request names none.")
    sha256: str
    task: str
    classes: list[str] | None = None
    metrics: dict | None = Field(None, description="Measured quality, with how it was measured.")
    calibration: dict | None = Field(None, description="How the probabilities were calibrated, and the figures.")
    license: str


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unsupported_type.")
    message: str
    request_id: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "not_ready"]


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Links(BaseModel):
    self: str = Field(description="Where to GET the job.")


class JobAccepted(BaseModel):
    job_id: str
    status: JobState
    tag: str | None = Field(None, description="The client's own reference, as sent.")
    created_at: datetime
    links: Links


class JobWebhook(BaseModel):
    url: str
    status: Literal["pending", "delivered", "failed", "gave_up"] = Field(
        description="pending: not yet attempted; failed: the last attempt did not deliver and another is due at "
        "next_attempt_at; delivered: a 2xx came; gave_up: the retries ran out, or the receiver answered 410."
    )
    attempts: int = Field(description="Attempts since the event was first due (or last redelivered).")
    last_status: int | None = Field(None, description="The HTTP status of the last attempt; null if none came.")
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = Field(None, description="When the next attempt is due; null once it ended.")
    given_up_at: datetime | None = Field(
        None, description="Set when the retries ended undelivered: the schedule ran out, or the receiver answered 410."
    )


class JobClaim(BaseModel):
    started_at: datetime
    ended_at: datetime | None = None
    outcome: Literal["running", "finished", "interrupted", "lease_expired"] = Field(
        description="interrupted: given back at a graceful shutdown; lease_expired: its worker crashed or hung."
    )


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    job_id: str
    status: JobState
    kind: Literal["video", "photo", "session"] = Field(description="session: a viewer's recording in a study.")
    tag: str | None = None
    created_at: datetime
    started_at: datetime | None = Field(None, description="When the latest claim began.")
    finished_at: datetime | None = None
    attempts: int = Field(
        description="Times a worker took the job up and ran it or crashed (its lease expired); not interruptions."
    )
    interruptions: int = Field(
        0, description="Times a worker gave the job back to the queue at a graceful shutdown, at no attempt's cost."
    )
    claims: list[JobClaim] = Field(default_factory=list, description="Every time a worker took the job up.")
    error: JobError | None = None
    webhook: JobWebhook | None = None
    result: dict[str, Any] | None = Field(
        None,
        description="Once succeeded: the body /v1/video or /v1/predict returns for the same input and options; for "
        "a session, its study, session and status.",
    )
    links: Links


class JobList(BaseModel):
    jobs: list[JobStatus] = Field(description="Newest first, without results.")
    next_cursor: str | None = None


class UsageFigures(BaseModel):
    requests: int = Field(description="Requests to /v1 let in (past the key check and its rate), streams included.")
    images: int = Field(description="Photos analysed: /v1/predict, /v1/annotate and photo jobs.")
    faces: int = Field(description="Faces found in those photos, and people followed through clips and recordings.")
    media_seconds: float = Field(description="Seconds of clips, study recordings and streams analysed by the service.")
    jobs: int = Field(description="Jobs submitted (POST /v1/jobs), replays of an Idempotency-Key not counted.")
    study_sessions: int = Field(description="Study sessions: recordings submitted, and on-device sessions completed.")


class UsageDay(UsageFigures):
    day: date = Field(description="A UTC day.")


class UsageReport(BaseModel):
    days: list[UsageDay] = Field(description="Each UTC day of the range on which the key used anything, oldest first.")
    total: UsageFigures = Field(description="The range's total.")
