"""One viewer's recording reduced to what a study keeps: for each second of the stimulus, the
viewer's emotion probabilities (or none, when their face was not found), whether they were
attending and what their face did (smile, expressiveness, blinks); and the quality gate that decides
whether the viewer counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.config import StudySettings
from service.inference.faces import Faces
from service.inference.head_pose import head_pose
from service.studies.face_actions import DescribedFrames, SecondActions
from service.tracking.summary import TrackTotals

# A recording may end this much before the stimulus does and still cover it (frame timing, rounding).
END_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class SecondSummary:
    """What one stimulus second of one viewer comes down to, wherever the frames were analysed (the server,
    or the viewer's browser): how many frames were analysed in it, in how many the viewer's face was found,
    and over those, the median probability of each class (renormalised to sum to 1), the median |yaw|
    and |pitch| of the head and, where the face mesh ran, what the face did."""

    analysed: int
    faces: int
    probabilities: list[float] | None
    yaw_deg: float | None
    pitch_deg: float | None
    actions: SecondActions | None = None


@dataclass(frozen=True)
class AttentionLimits:
    max_yaw_deg: float
    max_pitch_deg: float
    max_gaze_yaw_deg: float

    @classmethod
    def of(cls, settings: StudySettings) -> AttentionLimits:
        return cls(settings.max_yaw_deg, settings.max_pitch_deg, settings.max_gaze_yaw_deg)

    def attentive(self, second: SecondSummary) -> bool:
        """Turned to the screen: the second's median |yaw| and |pitch| within the limits and, where the face
        mesh ran, the eyes too (median |gaze yaw|). No pose: not attending."""
        if second.yaw_deg is None or second.pitch_deg is None:
            return False
        if second.actions is not None and second.actions.gaze_yaw_deg > self.max_gaze_yaw_deg:
            return False
        return abs(second.yaw_deg) <= self.max_yaw_deg and abs(second.pitch_deg) <= self.max_pitch_deg


def second_summary(faces: Faces, analysed: int, actions: SecondActions | None = None) -> SecondSummary:
    """The summary of a second from the main face's frames in it: the head pose of the whole mesh where
    the frames were described, else of the five landmarks."""
    if not len(faces):
        return SecondSummary(analysed, 0, None, None, None)
    if faces.descriptions is not None:
        poses = [d.head_pose[:2] for d in faces.descriptions]
    else:
        poses = [pose[:2] for pose in map(head_pose, faces.landmarks) if pose is not None]
    yaw, pitch = (float(v) for v in np.median(np.abs(np.array(poses)), axis=0)) if poses else (None, None)
    medians = np.median(faces.probabilities, axis=0)
    probabilities = [float(v) for v in medians / medians.sum()]  # a distribution again
    return SecondSummary(analysed, len(faces), probabilities, yaw, pitch, actions)


@dataclass(frozen=True)
class Trace:
    """Per stimulus second: probabilities in the model's class order (None: no face), attention, and
    where the face mesh ran, the face's actions (SecondActions.to_json; None: no face)."""

    probabilities: list[list[float] | None]
    attentive: list[bool]
    actions: list[dict | None] | None = None

    def presence(self) -> float:
        """Share of the stimulus's seconds in which the viewer's face was found."""
        return sum(p is not None for p in self.probabilities) / max(len(self.probabilities), 1)

    def to_json(self) -> dict:
        actions = {} if self.actions is None else {"actions": self.actions}
        return {"probabilities": self.probabilities, "attentive": self.attentive, **actions}

    @classmethod
    def from_json(cls, data: dict) -> Trace:
        return cls(data["probabilities"], data["attentive"], data.get("actions"))


def stimulus_seconds(duration_s: float) -> int:
    """The whole seconds a report has a row for."""
    return max(1, int(duration_s + 1e-9))


def main_face(tracks: list[TrackTotals], width: int, height: int) -> tuple[np.ndarray, Faces]:
    """The viewer's face through the recording, as (frame times in ms, one row per frame): the track with
    the most frames near the centre (frames times centrality), then any track that never overlaps it in
    time (the viewer, back after leaving)."""

    def centrality(track: TrackTotals) -> float:
        boxes = np.concatenate([face.boxes for _, face in track.timeline])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        offset = np.abs(centres.mean(axis=0) / (width, height) - 0.5) * 2  # 0 at the centre, 1 at an edge
        return 1.0 - 0.5 * float(np.hypot(*offset) / np.sqrt(2))

    chosen: list[TrackTotals] = []
    for track in sorted((t for t in tracks if t.timeline), key=lambda t: -t.frames * centrality(t)):
        if all(track.last_ms < c.first_ms or track.first_ms > c.last_ms for c in chosen):
            chosen.append(track)
    frames = sorted((entry for t in chosen for entry in t.timeline), key=lambda entry: entry[0])
    return np.array([time_ms for time_ms, _ in frames]), Faces.concatenate([face for _, face in frames])


def viewer_trace(
    tracks: list[TrackTotals],
    frame_size: tuple[int, int],
    offset_s: float,
    seconds: int,
    analysed_ms: list[float],
) -> list[SecondSummary]:
    """Per stimulus second t (recording time offset_s + t to offset_s + t + 1): the summary of the main
    face's frames in that second, against the count of every frame analysed in it (`analysed_ms`: the
    time of every analysed frame, with a face or not). `frame_size` is (width, height). Where the frames
    were described, each second has the face's actions, its resting level and blinks read over the whole
    recording."""
    times_ms, faces = main_face(tracks, *frame_size)
    analysed = np.bincount(second_of(np.asarray(analysed_ms, float), offset_s, seconds), minlength=seconds + 1)
    face_seconds = second_of(times_ms, offset_s, seconds)
    if faces.descriptions is None or not len(faces):
        return [second_summary(faces[face_seconds == t], int(analysed[t])) for t in range(seconds)]
    described = DescribedFrames.of(times_ms, faces.descriptions)
    blinks = np.bincount(second_of(described.blinks_ms, offset_s, seconds), minlength=seconds + 1)
    return [
        second_summary(faces[rows], int(analysed[t]), described.second(rows, int(blinks[t])))
        for t, rows in ((t, face_seconds == t) for t in range(seconds))
    ]


def trace_of(seconds: list[SecondSummary], limits: AttentionLimits) -> Trace:
    """The viewer's trace: a second counts only when the face was found in at least half of the frames
    analysed in it (one frame of a face turning away is not a viewer's second); it keeps the median
    probabilities (model class order), whether the face was turned to the screen and what it did."""
    probabilities: list[list[float] | None] = []
    attentive: list[bool] = []
    actions: list[dict | None] = []
    for second in seconds:
        counts = second.faces and second.probabilities is not None and 2 * second.faces >= second.analysed
        probabilities.append([round(v, 5) for v in second.probabilities] if counts else None)
        attentive.append(bool(counts) and limits.attentive(second))
        actions.append(second.actions.to_json() if counts and second.actions is not None else None)
    described = any(second.actions is not None for second in seconds)
    return Trace(probabilities, attentive, actions if described else None)


def second_of(times_ms: np.ndarray, offset_s: float, seconds: int) -> np.ndarray:
    """The stimulus second of each recording time; `seconds` for times outside the stimulus."""
    second = np.floor(times_ms / 1000 - offset_s).astype(int)
    return np.where((second >= 0) & (second < seconds), second, seconds)


def exclusion(trace: Trace, recording_s: float, offset_s: float, duration_s: float, min_presence: float) -> str | None:
    """Why a viewer does not count (None: they do): the recording misses part of the stimulus, or their
    face is found in too little of it."""
    missing = offset_s + duration_s - recording_s
    if missing > END_TOLERANCE_S:
        return f"the recording ends {missing:.1f} s before the stimulus does"
    if trace.presence() < min_presence:
        return f"face found in {trace.presence():.0%} of the stimulus (minimum {min_presence:.0%})"
    return None
