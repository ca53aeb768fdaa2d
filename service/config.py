"""All service settings, read once from `EMOTION_*` environment variables (or a `.env` file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class UnreadableKeys(Exception):
    """The API key file the settings name cannot give any key."""


@dataclass(frozen=True)
class TrackingSettings:
    """What following faces through frames needs: clips, streams and the command line alike."""

    detection: str  # "full" or "region"
    key_interval_s: float
    max_gap_s: float
    min_frames: int


@dataclass(frozen=True)
class WebhookSettings:
    """What signing and delivering webhooks needs."""

    secret: str
    allow_private: bool
    timeout_s: float
    retry_delays_s: tuple[float, ...]
    concurrency: int
    target_concurrency: int


@dataclass(frozen=True)
class StudySettings:
    """What analysing sessions and computing reports needs."""

    session_fps: float
    descriptors: bool  # run the face mesh on recorded sessions (the actions, attention with the eyes)
    min_presence: float
    max_yaw_deg: float
    max_pitch_deg: float
    max_gaze_yaw_deg: float
    smile_threshold: float
    bootstrap_resamples: int
    longest_s: float  # the longest recording, hence the longest stimulus
    report_workers: int
    report_queue: int
    min_viewers: int
    min_viewers_share: float
    segment_min_viewers: int  # the privacy floor: smaller segments get no figures
    norms_min_studies: int


@dataclass(frozen=True)
class QuotaSettings:
    """What one API key may use (0: no limit)."""

    requests_per_s: float
    queued_jobs: int
    stored_bytes: int
    media_s_per_day: float


@dataclass(frozen=True)
class LinkSettings:
    """What participant links need."""

    secrets: tuple[str, ...]  # the first signs; every one verifies (rotation); empty: one made at start
    requests_per_min: int
    camera_check_s: float
    default_expiry_h: float
    device_model: str  # what on-device sessions of a study not yet pinned run
    min_device_fps: float  # an on-device session analysed more slowly does not count


# A list given as one comma-separated variable (EMOTION_EMOTION_MODELS=emotion,emotion-fast), not JSON.
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    # EMOTION_ENV_FILE names another file than `.env`; set empty, none is read (as the tests do).
    model_config = SettingsConfigDict(
        env_prefix="EMOTION_", env_file=os.environ.get("EMOTION_ENV_FILE", ".env") or None, extra="ignore"
    )

    # Server
    host: str = Field("127.0.0.1", description="Address uvicorn binds to.")
    port: int = Field(8000, description="Port uvicorn listens on.")
    workers: int = Field(1, ge=1, description="uvicorn worker processes; each loads its own models.")
    log_level: str = Field("info", description="Python log level name.")

    # Models
    model_store: Path = Field(PROJECT_ROOT / "model_store", description="Root of the versioned model store.")
    emotion_models: CommaList = Field(
        ["emotion", "emotion-fast"],
        description="Emotion models to serve: comma-separated names in the store, each optionally pinned as "
        "name:version (else its highest version). Each gets its own micro-batcher.",
    )
    default_emotion_model: str = Field(
        "emotion", description="The emotion model of requests without a `model` parameter; one of emotion_models."
    )
    detector_model: str = Field("retinaface", description="Model name of the face detector in the store.")
    detector_version: str | None = Field(None, description="Version to serve; unset means the highest.")

    # Inference
    detector_backend: Literal["opencv", "onnxruntime"] = Field(
        "onnxruntime", description="Runtime for the face detector: onnxruntime (faster here) or OpenCV DNN, same ONNX."
    )
    detect_max_side: int = Field(640, ge=64, description="Photos are downscaled to this long side to detect.")
    detect_score_threshold: float = Field(0.6, gt=0, lt=1, description="Minimum face detection score.")
    detect_nms_threshold: float = Field(0.4, gt=0, lt=1, description="IoU above which overlapping boxes merge.")
    min_face_size: int = Field(16, ge=1, description="Faces smaller than this (pixels, original image) are dropped.")
    max_batch_size: int = Field(32, ge=1, description="Most face crops the micro-batcher sends in one model call.")
    max_batch_wait_ms: float = Field(2.0, ge=0, description="How long the micro-batcher waits to fill a batch.")
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime and OpenCV threads; 0 lets them choose.")

    # Overload protection
    max_concurrent_requests: int = Field(
        64, ge=1, description="Predict requests admitted at once; past it, 503 with Retry-After at once."
    )
    request_timeout_s: float = Field(30.0, gt=0, description="Longest a predict request may take before a 504.")

    # Shutdown (see service.api.shutdown)
    drain_s: float = Field(
        5.0, ge=0, description="After SIGTERM, seconds of serving with readiness off, for balancers to stop sending."
    )
    shutdown_timeout_s: float = Field(
        30.0, gt=0, description="After the drain, longest wait for requests and streams in flight."
    )

    # Access
    api_keys: SecretStr = Field(
        SecretStr(""), description="Comma-separated API keys; empty (and no file) disables keys."
    )
    api_keys_file: Path | None = Field(None, description="File with one API key per line, e.g. a mounted Secret.")
    metrics_require_api_key: bool = Field(False, description="Whether /metrics also needs a key.")
    cors_origins: CommaList = Field([], description="Comma-separated origins allowed by CORS; empty disables CORS.")

    # Limits on what clients send
    max_files: int = Field(16, ge=1, description="Most images in one request.")
    max_file_bytes: int = Field(10 * 2**20, ge=1024, description="Largest accepted image file, in bytes.")
    max_request_bytes: int = Field(40 * 2**20, ge=1024, description="Largest accepted request body, in bytes.")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Largest accepted width x height (bomb guard).")
    max_request_pixels: int = Field(
        80_000_000, ge=1, description="Largest sum of width x height over the images of one request."
    )
    max_buffered_body_bytes: int = Field(
        256 * 2**20,
        ge=1024,
        description="Request body bytes the whole process holds at once; past it, new uploads get 503.",
    )
    request_body_timeout_s: float = Field(
        60.0, gt=0, description="Longest a request body may take to arrive; past it, 408."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Longest a connection may take to send a request's headers before it is closed."
    )

    # Video (POST /v1/video)
    video_max_bytes: int = Field(100 * 2**20, ge=1024, description="Largest accepted clip, in bytes.")
    video_max_duration_s: float = Field(600, gt=0, description="Longest accepted clip, in seconds.")
    video_max_frame_pixels: int = Field(3840 * 2160, ge=1, description="Largest accepted frame, width x height.")
    video_max_frames: int = Field(3000, ge=1, description="Most frames analysed in one request.")
    video_timeout_s: float = Field(300.0, gt=0, description="Longest a video request may take before a 504.")

    # Live streams (WebSocket /v1/stream)
    stream_max_streams: int = Field(16, ge=1, description="Most streams open at once; past it, close code 1013.")
    stream_max_frame_bytes: int = Field(
        4 * 2**20, ge=1024, description="Largest frame message; past it, close code 1009."
    )
    stream_max_frame_pixels: int = Field(3840 * 2160, ge=1, description="Largest frame, width x height.")
    stream_idle_timeout_s: float = Field(30.0, gt=0, description="A stream with no message for this long is closed.")
    stream_auth_timeout_s: float = Field(
        5.0, gt=0, description="With API keys on, a stream that has not sent a valid key by then is closed (1008)."
    )
    stream_smoothing_s: float = Field(1.0, ge=0, description="Default smoothing of a stream, in seconds.")

    # Asynchronous jobs (/v1/jobs) and their webhooks
    database_url: str = Field(
        f"sqlite:///{PROJECT_ROOT / 'var' / 'jobs.db'}",
        description="The job store: SQLite (one machine) or postgresql+psycopg://... (replicas sharing jobs).",
    )
    media_store: str = Field(
        str(PROJECT_ROOT / "var" / "media"),
        description="Where uploads wait for their job: a folder, or s3://bucket/prefix when replicas share jobs.",
    )
    job_workers: int = Field(1, ge=0, description="Job workers inside this process; 0 leaves jobs to `service worker`.")
    job_lease_s: float = Field(30.0, gt=0, description="A worker's hold on a job, renewed while it works.")
    job_max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts of a job before it fails (its workers kept crashing; graceful give-backs do not count).",
    )
    job_retention_h: float = Field(24.0, gt=0, description="Finished jobs and their results are deleted after this.")
    job_poll_s: float = Field(0.5, gt=0, description="How often an idle worker looks for a job or a due webhook.")
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="whsec_<base64> signing secret(s), space-separated during a rotation."
    )
    webhook_allow_private: bool = Field(
        False, description="Allow callback URLs on private, loopback and link-local addresses (on-premise, tests)."
    )
    webhook_retry_delays_s: Annotated[list[PositiveFloat], NoDecode] = Field(
        [5, 300, 1800, 7200, 18000, 36000, 36000],
        min_length=1,
        description="Seconds between webhook attempts after the first (Standard Webhooks' schedule).",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="One webhook attempt in all: resolving, connecting, sending, the answer's headers."
    )
    webhook_concurrency: int = Field(16, ge=1, le=1000, description="Webhook attempts under way at once per process.")
    webhook_target_concurrency: int = Field(
        2, ge=1, le=100, description="Of those, at most this many to one receiver (scheme, host and port)."
    )
    link_secret: SecretStr = Field(
        SecretStr(""),
        description="Secrets that sign participant links, comma-separated: the first signs, all verify (rotation). "
        "Empty: one is made at start, and links stop working when the process restarts.",
    )
    link_requests_per_min: int = Field(
        600, ge=10, description="Requests one participant link may make a minute (its page's checks and uploads)."
    )
    link_camera_check_s: float = Field(
        30.0, gt=0, le=600, description="A participant whose face is not seen within this is screened out."
    )
    link_device_model: str = Field(
        "emotion-fast",
        description="The emotion model on-device links run in the viewer's browser, for a study whose sessions "
        "have not pinned one yet.",
    )
    link_min_device_fps: float = Field(
        3.0,
        ge=1,
        le=30,
        description="On-device sessions must analyse at least this many frames a second: a slower browser falls "
        "back to an upload where its link allows, or ends with status=error.",
    )
    media_orphan_age_s: float = Field(
        600.0,
        gt=0,
        description="An upload no job owns (its request died before the job was stored) is deleted once this old.",
    )

    # Quotas per API key (none apply without keys)
    quota_requests_per_s: float = Field(
        50.0, ge=0, description="Requests a second one key may make, in bursts of twice that; 0: no limit."
    )
    quota_queued_jobs: int = Field(1000, ge=0, description="Jobs one key may have queued or running; 0: no limit.")
    quota_stored_bytes: int = Field(
        10 * 2**30, ge=0, description="Upload bytes one key's queued and running jobs may hold; 0: no limit."
    )
    quota_media_s_per_day: float = Field(
        86_400.0,
        ge=0,
        description="Seconds of clips, recordings and streams one key may have analysed per UTC day; 0: no limit.",
    )
    usage_retention_days: int = Field(
        400, ge=1, description="Daily usage figures (GET /v1/usage) are deleted after this many days."
    )

    # Audience studies (/v1/studies)
    study_session_fps: float = Field(
        5.0, ge=1, le=30, description="Frames analysed per second of a viewer's recording."
    )
    study_descriptors: bool = Field(
        True,
        description="Run the face mesh on recorded sessions: the report's actions and attention with the eyes. "
        "Off, sessions cost less and have neither.",
    )
    study_min_presence: float = Field(
        0.5, ge=0, le=1, description="A session is excluded when its face is found in less of the stimulus than this."
    )
    study_max_yaw_deg: float = Field(
        30.0, gt=0, le=90, description="Attentive: the face turned at most this far aside."
    )
    study_max_pitch_deg: float = Field(30.0, gt=0, le=90, description="Attentive: tilted at most this far up or down.")
    study_max_gaze_yaw_deg: float = Field(
        25.0, gt=0, le=90, description="Attentive: the eyes (head and eyes together) turned at most this far aside."
    )
    study_smile_threshold: float = Field(
        0.5, gt=0, le=1, description="A viewer smiles in a second whose median `smile` is at least this."
    )
    study_bootstrap_resamples: int = Field(
        1000, ge=1000, le=20000, description="Resamples of the viewers behind every bootstrap interval."
    )
    study_min_viewers: int = Field(
        10, ge=1, description="A second needs at least this many viewers' faces to be a peak, trough or best moment."
    )
    study_min_viewers_share: float = Field(
        0.3, ge=0, le=1, description="Or this share of the valid viewers, if that is more."
    )
    study_segment_min_viewers: int = Field(
        10, ge=1, description="A segment's figures need this many valid viewers: a privacy floor for respondents."
    )
    study_norms_min_studies: int = Field(
        5, ge=1, description="Norms give percentiles once the category has this many other studies."
    )
    study_report_workers: int = Field(
        1, ge=1, le=16, description="Threads computing study reports, apart from the ones decoding requests."
    )
    study_report_queue: int = Field(
        8, ge=0, le=1000, description="Reports waiting for a thread; past it, 503 overloaded with Retry-After."
    )

    # Tracking (video and live streams)
    detection: Literal["full", "region"] = Field(
        "region",
        description="Clips and streams: full-frame detection on every analysed frame, or on key frames only with "
        "detection around the tracked faces in between.",
    )
    detect_key_interval_s: float = Field(
        1.0, gt=0, description="With detection=region: a full-frame detection at least this often, in seconds."
    )
    detect_region_face_px: int = Field(
        80, ge=24, le=640, description="Around a tracked face, it is detected at about this size in pixels."
    )
    detect_region_margin: float = Field(
        0.6, ge=0.1, le=3, description="Around a tracked face, the region grows by this share of its side each way."
    )
    track_max_gap_s: float = Field(
        1.0, ge=0, description="A track ends when its face has been missing for longer than this, in seconds."
    )
    track_min_frames: int = Field(
        3, ge=1, description="Video tracks with fewer face-frames are dropped as stray detections."
    )

    @field_validator("emotion_models", "cors_origins", "webhook_retry_delays_s", mode="before")
    @classmethod
    def split_commas(cls, value: object) -> object:
        """A variable's comma-separated text as its list; a list (from code) as it is."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def fields_agree(self) -> Settings:
        """Rules between fields, checked at start-up rather than when the models load."""
        served = list(self.emotion_model_versions())
        if self.default_emotion_model not in served:
            raise ValueError(
                f"default_emotion_model {self.default_emotion_model!r} is not one of emotion_models {served}"
            )
        if self.media_orphan_age_s < self.request_body_timeout_s:
            raise ValueError(
                "media_orphan_age_s is shorter than request_body_timeout_s: an upload still arriving could be swept"
            )
        if self.webhook_target_concurrency > self.webhook_concurrency:
            raise ValueError("webhook_target_concurrency is larger than webhook_concurrency")
        return self

    @property
    def tracking(self) -> TrackingSettings:
        return TrackingSettings(self.detection, self.detect_key_interval_s, self.track_max_gap_s, self.track_min_frames)

    @property
    def webhooks(self) -> WebhookSettings:
        return WebhookSettings(
            self.webhook_secret.get_secret_value(),
            self.webhook_allow_private,
            self.webhook_timeout_s,
            tuple(self.webhook_retry_delays_s),
            self.webhook_concurrency,
            self.webhook_target_concurrency,
        )

    @property
    def quotas(self) -> QuotaSettings:
        return QuotaSettings(
            self.quota_requests_per_s, self.quota_queued_jobs, self.quota_stored_bytes, self.quota_media_s_per_day
        )

    @property
    def links(self) -> LinkSettings:
        secrets = tuple(s.strip() for s in self.link_secret.get_secret_value().split(",") if s.strip())
        return LinkSettings(
            secrets,
            self.link_requests_per_min,
            self.link_camera_check_s,
            168.0,
            self.link_device_model,
            self.link_min_device_fps,
        )

    @property
    def studies(self) -> StudySettings:
        return StudySettings(
            self.study_session_fps,
            self.study_descriptors,
            self.study_min_presence,
            self.study_max_yaw_deg,
            self.study_max_pitch_deg,
            self.study_max_gaze_yaw_deg,
            self.study_smile_threshold,
            self.study_bootstrap_resamples,
            self.video_max_duration_s,
            self.study_report_workers,
            self.study_report_queue,
            self.study_min_viewers,
            self.study_min_viewers_share,
            self.study_segment_min_viewers,
            self.study_norms_min_studies,
        )

    def emotion_model_versions(self) -> dict[str, str | None]:
        """emotion_models as {name: pinned version or None}, in the order given."""
        return {name: version or None for name, _, version in (entry.partition(":") for entry in self.emotion_models)}

    def load_api_keys(self) -> list[str]:
        """Keys from the variable and the file together; read once at start-up. A key file that is named
        but cannot be read, or holds no key, raises UnreadableKeys: the service must not start open."""
        keys = [key.strip() for key in self.api_keys.get_secret_value().split(",") if key.strip()]
        if self.api_keys_file is None:
            return keys
        try:
            from_file = [key.strip() for key in self.api_keys_file.read_text().splitlines() if key.strip()]
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise UnreadableKeys(f"EMOTION_API_KEYS_FILE {self.api_keys_file} cannot be read ({reason})") from None
        if not from_file:
            raise UnreadableKeys(f"EMOTION_API_KEYS_FILE {self.api_keys_file} holds no key")
        return keys + from_file


@lru_cache
def get_settings() -> Settings:
    return Settings()
