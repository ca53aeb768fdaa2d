"""One viewer's recording reduced to what a study keeps: for each second of the stimulus, the
viewer's emotion probabilities (or none, when their face was not found) and whether they were
attending; and the quality gate that decides whether the viewer counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.schemas import TimelineEntry, TrackResult, VideoResponse

# A recording may end this much before the stimulus does and still cover it (frame timing, rounding).
END_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class AttentionLimits:
    max_yaw_deg: float
    max_pitch_deg: float

    def attentive(self, entries: list[TimelineEntry]) -> bool:
        """Turned to the screen: the second's median yaw and pitch within the limits."""
        poses = [(e.head_pose.yaw, e.head_pose.pitch) for e in entries if e.head_pose is not None]
        if not poses:
            return False
        yaw, pitch = np.median(np.abs(np.array(poses)), axis=0)
        return bool(yaw <= self.max_yaw_deg and pitch <= self.max_pitch_deg)


@dataclass(frozen=True)
class Trace:
    """Per stimulus second: probabilities in the model's class order (None: no face), attention."""

    probabilities: list[list[float] | None]
    attentive: list[bool]

    def presence(self) -> float:
        """Share of the stimulus's seconds in which the viewer's face was found."""
        return sum(p is not None for p in self.probabilities) / max(len(self.probabilities), 1)

    def to_json(self) -> dict:
        return {"probabilities": self.probabilities, "attentive": self.attentive}

    @classmethod
    def from_json(cls, data: dict) -> Trace:
        return cls(data["probabilities"], data["attentive"])


def stimulus_seconds(duration_s: float) -> int:
    """The whole seconds a report has a row for."""
    return max(1, int(duration_s + 1e-9))


def main_face(tracks: list[TrackResult], width: int, height: int) -> list[TimelineEntry]:
    """The viewer's face through the recording: the track with the most frames near the centre (frames
    times centrality), then any track that never overlaps it in time (the viewer, back after leaving)."""

    def centrality(track: TrackResult) -> float:
        centres = np.array([(e.box.x + e.box.width / 2, e.box.y + e.box.height / 2) for e in track.timeline])
        offset = np.abs(centres.mean(axis=0) / (width, height) - 0.5) * 2  # 0 at the centre, 1 at an edge
        return 1.0 - 0.5 * float(np.hypot(*offset) / np.sqrt(2))

    chosen: list[TrackResult] = []
    for track in sorted((t for t in tracks if t.timeline), key=lambda t: -t.frames * centrality(t)):
        if all(track.last_ms < c.first_ms or track.first_ms > c.last_ms for c in chosen):
            chosen.append(track)
    return sorted((e for t in chosen for e in t.timeline), key=lambda e: e.time_ms)


def viewer_trace(
    answer: VideoResponse,
    offset_s: float,
    seconds: int,
    classes: tuple[str, ...],
    limits: AttentionLimits,
    analysed_ms: list[float],
) -> Trace:
    """Per stimulus second t (recording time offset_s + t to offset_s + t + 1): the median of each class's
    probability over the main face's frames in that second, and whether the face was attending. A second
    counts only when the face was found in at least half of the frames analysed in it (`analysed_ms`:
    the time of every analysed frame, with a face or not): one frame of a face turning away is not a
    viewer's second."""
    entries = main_face(answer.tracks, answer.video.width, answer.video.height)
    analysed = [0] * seconds
    for time_ms in analysed_ms:
        second = int(np.floor(time_ms / 1000 - offset_s))
        if 0 <= second < seconds:
            analysed[second] += 1
    by_second: list[list[TimelineEntry]] = [[] for _ in range(seconds)]
    for entry in entries:
        second = int(np.floor(entry.time_ms / 1000 - offset_s))
        if 0 <= second < seconds:
            by_second[second].append(entry)
    by_second = [group if 2 * len(group) >= analysed[t] else [] for t, group in enumerate(by_second)]
    probabilities: list[list[float] | None] = []
    for group in by_second:
        if group:
            raw = np.array([[getattr(e.raw_emotions, c) for c in classes] for e in group])
            probabilities.append([round(float(v), 5) for v in np.median(raw, axis=0)])
        else:
            probabilities.append(None)
    return Trace(probabilities, [bool(group) and limits.attentive(group) for group in by_second])


def exclusion(trace: Trace, recording_s: float, offset_s: float, duration_s: float, min_presence: float) -> str | None:
    """Why a viewer does not count (None: they do): the recording misses part of the stimulus, or their
    face is found in too little of it."""
    missing = offset_s + duration_s - recording_s
    if missing > END_TOLERANCE_S:
        return f"the recording ends {missing:.1f} s before the stimulus does"
    if trace.presence() < min_presence:
        return f"face found in {trace.presence():.0%} of the stimulus (minimum {min_presence:.0%})"
    return None
