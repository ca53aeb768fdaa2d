"""Per-person and whole-clip figures of a clip, accumulated one analysed frame at a time, as arrays
(`results.py` turns them into the answer's `tracks` and `summary`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.inference.faces import Faces


@dataclass(frozen=True)
class AnalysedFrame:
    time_ms: float
    faces: Faces  # tracked: with probabilities, track ids and smoothed probabilities


@dataclass
class TrackTotals:
    classes: int
    first_ms: float
    last_ms: float = 0.0
    frames: int = 0
    timeline: list[tuple[float, Faces]] | None = None  # (time, the face's one-row Faces) per frame
    actions: list[tuple[float, dict[str, float]]] | None = None  # (time, derived descriptors), when described
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
        self.tracks: dict[int, TrackTotals] = {}
        self.frames_analysed = 0

    def add(self, frame: AnalysedFrame) -> None:
        """One frame's tracked faces."""
        self.frames_analysed += 1
        faces = frame.faces
        for row, (track_id, raw, smoothed) in enumerate(zip(faces.track_ids, faces.probabilities, faces.smoothed)):
            totals = self.tracks.setdefault(int(track_id), TrackTotals(len(self.classes), frame.time_ms))
            totals.last_ms = frame.time_ms
            totals.frames += 1
            totals.raw_sum += raw
            better = smoothed > totals.peak_probability
            totals.peak_probability = np.where(better, smoothed, totals.peak_probability)
            totals.peak_ms = np.where(better, frame.time_ms, totals.peak_ms)
            totals.dominant_counts[int(np.argmax(smoothed))] += 1
            if faces.descriptions is not None:
                if totals.actions is None:
                    totals.actions = []
                totals.actions.append((frame.time_ms, faces.descriptions[row].derived))
            if self.keep_timeline:
                if totals.timeline is None:
                    totals.timeline = []
                totals.timeline.append((frame.time_ms, faces[row].with_columns(crops=None)))

    def kept(self) -> dict[int, TrackTotals]:
        """Tracks long enough to be a person rather than a stray detection."""
        return {i: t for i, t in self.tracks.items() if t.frames >= self.min_track_frames}
