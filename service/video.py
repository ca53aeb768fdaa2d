"""A clip through the photo pipeline: sampled frames detected and aligned in a reader thread,
classified through the shared micro-batcher, linked into tracks, and summarised per person.

The reader thread stays at most a few frames ahead of classification, so decoding and detection of
the next frame overlap the model call for this one while memory stays bounded. Per-person
summaries are accumulated as frames go by; the per-frame timeline is kept only when the caller
asks for it (the streamed form sends each frame as it is done instead).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from service.config import Settings
from service.metrics import Metrics
from service.pipeline import AsyncClassify, Pipeline, PreparedImage
from service.results import face_result
from service.schemas import EmotionScores, Peak, TimelineEntry, TrackedFace, TrackResult, VideoSummary
from service.tracking import CutDetector, FaceTracker, Sighting
from service.video_decode import Clip, VideoLimits

T = TypeVar("T")
# Frames the reader may prepare ahead of classification.
READ_AHEAD = 2


def video_limits(settings: Settings) -> VideoLimits:
    s = settings
    return VideoLimits(s.video_max_bytes, s.video_max_duration_s, s.video_max_frame_pixels, s.video_max_frames)


@dataclass(frozen=True)
class AnalysedFrame:
    time_ms: float
    faces: list[Sighting]


@dataclass
class _Prepared:
    time_ms: float
    prepared: PreparedImage
    cut: bool


_END = object()


async def analyse_clip(
    clip: Clip,
    fps: float,
    pipeline: Pipeline,
    classify: AsyncClassify,
    tracker: FaceTracker,
    metrics: Metrics,
    deadline: float | None = None,
) -> AsyncGenerator[AnalysedFrame, None]:
    """Yield each analysed frame with its tracked faces, raising TimeoutError once `deadline` (monotonic
    seconds, if any) has passed, even while no frame comes. Closing the generator stops the reader thread
    before its next frame, skipped frames included."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue = asyncio.Queue()
    room = threading.Semaphore(READ_AHEAD)
    stop = threading.Event()

    def hand_over(item: object) -> None:
        # A consumer that has stopped may have closed its event loop too: then nobody is waiting.
        with suppress(RuntimeError):
            if not stop.is_set():
                loop.call_soon_threadsafe(ready.put_nowait, item)

    def read() -> None:
        cuts = CutDetector()
        try:
            for frame in clip.frames(fps, stop):
                metrics.stage_seconds.labels("video_decode").observe(frame.decode_seconds)
                item = _Prepared(frame.time_ms, pipeline.prepare_frame(frame.image), cuts.is_cut(frame.image))
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                hand_over(item)
        except Exception as error:  # handed to the consumer, which raises it in the request
            hand_over(error)
        finally:
            clip.close()
            hand_over(_END)

    reader = threading.Thread(target=read, name="video-reader", daemon=True)
    reader.start()
    try:
        while (item := await before(deadline, ready.get())) is not _END:
            if isinstance(item, Exception):
                raise item
            room.release()
            if item.cut:
                tracker.reset()
            crops = item.prepared.crops
            probabilities = await before(deadline, classify(crops)) if len(crops) else np.empty((0, 7), np.float32)
            metrics.video_frames.inc()
            faces = tracker.update(item.time_ms / 1000, item.prepared.detections, probabilities)
            yield AnalysedFrame(item.time_ms, faces)
    finally:
        stop.set()


async def before(deadline: float | None, awaitable: Awaitable[T]) -> T:
    """Await within the deadline (monotonic seconds; None: no limit), else TimeoutError."""
    return await asyncio.wait_for(awaitable, None if deadline is None else max(0.0, deadline - time.monotonic()))


def tracked_face(face: Sighting, classes: tuple[str, ...]) -> TrackedFace:
    public = face_result(face.detection, face.smoothed.tolist(), classes)
    raw = EmotionScores(**dict(zip(classes, (round(float(p), 6) for p in face.raw))))
    return TrackedFace(**public.model_dump(), track_id=face.track_id, raw_emotions=raw)


def scores(values: np.ndarray, classes: tuple[str, ...]) -> EmotionScores:
    return EmotionScores(**dict(zip(classes, (round(float(v), 6) for v in values))))


@dataclass
class _TrackTotals:
    first_ms: float
    last_ms: float = 0.0
    frames: int = 0
    raw_sum: np.ndarray = field(default_factory=lambda: np.zeros(7))
    peak_probability: np.ndarray = field(default_factory=lambda: np.full(7, -1.0))
    peak_ms: np.ndarray = field(default_factory=lambda: np.zeros(7))
    dominant_counts: np.ndarray = field(default_factory=lambda: np.zeros(7))
    timeline: list[TimelineEntry] | None = None


class ClipSummary:
    """Per-person and whole-clip figures, accumulated one analysed frame at a time."""

    def __init__(self, classes: tuple[str, ...], min_track_frames: int, keep_timeline: bool) -> None:
        self.classes = classes
        self.min_track_frames = min_track_frames
        self.keep_timeline = keep_timeline
        self.tracks: dict[int, _TrackTotals] = {}
        self.frames_analysed = 0

    def add(self, frame: AnalysedFrame, faces: list[TrackedFace]) -> None:
        """One frame: its tracker output and the same faces in their public form."""
        self.frames_analysed += 1
        for face, public in zip(frame.faces, faces):
            totals = self.tracks.setdefault(face.track_id, _TrackTotals(first_ms=frame.time_ms))
            if self.keep_timeline and totals.timeline is None:
                totals.timeline = []
            totals.last_ms = frame.time_ms
            totals.frames += 1
            totals.raw_sum += face.raw
            better = face.smoothed > totals.peak_probability
            totals.peak_probability = np.where(better, face.smoothed, totals.peak_probability)
            totals.peak_ms = np.where(better, frame.time_ms, totals.peak_ms)
            totals.dominant_counts[int(np.argmax(face.smoothed))] += 1
            if totals.timeline is not None:
                entry = public.model_dump(exclude={"track_id"})
                totals.timeline.append(TimelineEntry(time_ms=frame.time_ms, **entry))

    def kept(self) -> dict[int, _TrackTotals]:
        """Tracks long enough to be a person rather than a stray detection."""
        return {i: t for i, t in self.tracks.items() if t.frames >= self.min_track_frames}

    def track_results(self) -> list[TrackResult]:
        results = []
        for track_id, t in self.kept().items():
            mean = t.raw_sum / t.frames
            results.append(
                TrackResult(
                    track_id=track_id,
                    first_ms=t.first_ms,
                    last_ms=t.last_ms,
                    frames=t.frames,
                    emotions=scores(mean, self.classes),
                    dominant_emotion=self.classes[int(np.argmax(mean))],
                    peaks={
                        c: Peak(time_ms=float(t.peak_ms[i]), probability=round(float(t.peak_probability[i]), 6))
                        for i, c in enumerate(self.classes)
                    },
                    timeline=t.timeline,
                )
            )
        return results

    def summary(self) -> VideoSummary:
        kept = self.kept().values()
        face_frames = sum(t.frames for t in kept)
        if face_frames == 0:
            zeros = scores(np.zeros(len(self.classes)), self.classes)
            return VideoSummary(emotions=zeros, dominant_share=zeros, people=0)
        raw_sum = sum(t.raw_sum for t in kept)
        dominant = sum(t.dominant_counts for t in kept)
        return VideoSummary(
            emotions=scores(raw_sum / face_frames, self.classes),
            dominant_share=scores(dominant / face_frames, self.classes),
            people=len(kept),
        )
