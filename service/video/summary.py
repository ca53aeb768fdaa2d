"""Per-person and whole-clip figures of a clip, accumulated one analysed frame at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.inference.results import emotion_scores
from service.schemas import Peak, TimelineEntry, TrackedFace, TrackResult, VideoSummary
from service.tracking.tracker import Sighting


@dataclass(frozen=True)
class AnalysedFrame:
    time_ms: float
    faces: list[Sighting]


@dataclass
class _TrackTotals:
    classes: int
    first_ms: float
    last_ms: float = 0.0
    frames: int = 0
    timeline: list[TimelineEntry] | None = None
    raw_sum: np.ndarray = field(init=False)
    peak_probability: np.ndarray = field(init=False)
    peak_ms: np.ndarray = field(init=False)
    dominant_counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.raw_sum = np.zeros(self.classes)
        self.peak_probability = np.full(self.classes, -1.0)
        self.peak_ms = np.zeros(self.classes)
        self.dominant_counts = np.zeros(self.classes)


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
            totals = self.tracks.setdefault(face.track_id, _TrackTotals(len(self.classes), frame.time_ms))
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
                    emotions=emotion_scores(mean, self.classes),
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
            zeros = emotion_scores(np.zeros(len(self.classes)), self.classes)
            return VideoSummary(emotions=zeros, dominant_share=zeros, people=0)
        raw_sum = sum(t.raw_sum for t in kept)
        dominant = sum(t.dominant_counts for t in kept)
        return VideoSummary(
            emotions=emotion_scores(raw_sum / face_frames, self.classes),
            dominant_share=emotion_scores(dominant / face_frames, self.classes),
            people=len(kept),
        )
