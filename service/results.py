"""The public schema built from `Faces` and the clip summary: the one edge where arrays become answers,
shared by the HTTP API, the live stream, the job worker and the command line."""

from __future__ import annotations

import re

import numpy as np

from service.inference.face_mesh import FaceDescription
from service.inference.faces import Faces
from service.inference.head_pose import head_pose
from service.inference.model_store import StoredModel
from service.inference.pipeline import ImageFaces
from service.schemas import (
    Actions,
    Box,
    EmotionScores,
    Face,
    Gaze,
    HeadPose,
    ImageResult,
    Landmarks,
    ModelRef,
    Peak,
    Point,
    TimelineEntry,
    TrackActions,
    TrackedFace,
    TrackResult,
    VideoSummary,
)
from service.tracking.blinks import blink_times
from service.tracking.summary import ClipSummary, TrackTotals

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MAX_FILENAME_CHARS = 255
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_filename(name: str | None) -> str | None:
    """A client's file name as it may be echoed: its last path part, no control characters, at most 255 characters."""
    if name is None:
        return None
    base = CONTROL_CHARACTERS.sub("", name).replace("\\", "/").rsplit("/", 1)[-1]
    return base[:MAX_FILENAME_CHARS] or None


def emotion_scores(values: np.ndarray, classes: tuple[str, ...]) -> EmotionScores:
    """The one place a distribution becomes the public `emotions` object, rounded to 6 places."""
    return EmotionScores(**dict(zip(classes, (round(float(v), 6) for v in values))))


def face_result(faces: Faces, row: int, probabilities: np.ndarray, classes: tuple[str, ...]) -> Face:
    """One row of `faces` with the given distribution (this frame's, or the track's smoothed one); a
    described face adds what it does, and its head pose is then the whole mesh's, not five points'."""
    x1, y1, x2, y2 = (round(float(v), 1) for v in faces.boxes[row])
    points = faces.landmarks[row]
    described: FaceDescription | None = None if faces.descriptions is None else faces.descriptions[row]
    face = Face(
        box=Box(x=x1, y=y1, width=round(x2 - x1, 1), height=round(y2 - y1, 1)),
        landmarks=Landmarks(
            **{n: Point(x=round(float(x), 1), y=round(float(y), 1)) for n, (x, y) in zip(LANDMARK_NAMES, points)}
        ),
        head_pose=pose_result(head_pose(points) if described is None else described.head_pose),
        detection_score=round(float(faces.scores[row]), 4),
        emotions=emotion_scores(probabilities, classes),
        dominant_emotion=classes[int(np.argmax(probabilities))],
    )
    if described is not None:
        face.descriptors = {name: round(score, 4) for name, score in described.blendshapes.items()}
        face.actions = Actions(**{name: round(value, 4) for name, value in described.derived.items()})
        face.gaze = Gaze(yaw=round(described.gaze[0], 1), pitch=round(described.gaze[1], 1))
    return face


def pose_result(pose: tuple[float, float, float] | None) -> HeadPose | None:
    return None if pose is None else HeadPose(**dict(zip(("yaw", "pitch", "roll"), (round(a, 1) for a in pose))))


def image_result(filename: str | None, analysed: ImageFaces, classes: tuple[str, ...]) -> ImageResult:
    faces = analysed.faces
    results = [face_result(faces, row, faces.probabilities[row], classes) for row in range(len(faces))]
    return ImageResult(filename=safe_filename(filename), width=analysed.width, height=analysed.height, faces=results)


def tracked_faces(faces: Faces, classes: tuple[str, ...]) -> list[TrackedFace]:
    """A frame's tracked faces: smoothed emotions, and this frame's raw ones beside them."""
    return [
        TrackedFace(
            **face_result(faces, row, faces.smoothed[row], classes).model_dump(),
            track_id=int(faces.track_ids[row]),
            raw_emotions=emotion_scores(faces.probabilities[row], classes),
            detection="region" if faces.region[row] else "full",
        )
        for row in range(len(faces))
    ]


def timeline(totals: TrackTotals, classes: tuple[str, ...]) -> list[TimelineEntry] | None:
    if totals.timeline is None:
        return None
    entries = []
    for time_ms, face in totals.timeline:
        (public,) = tracked_faces(face, classes)
        entries.append(TimelineEntry(time_ms=time_ms, **public.model_dump(exclude={"track_id"})))
    return entries


def track_actions(totals: TrackTotals) -> TrackActions | None:
    """A track's mean actions and its blinks (None when the clip was analysed without descriptors)."""
    if not totals.actions:
        return None
    times = np.array([time_ms for time_ms, _ in totals.actions])
    means = {name: round(float(np.mean([a[name] for _, a in totals.actions])), 4) for name in Actions.model_fields}
    blinks = blink_times(times, np.array([a["eye_closure"] for _, a in totals.actions]))
    span_min = (times[-1] - times[0]) / 60_000
    return TrackActions(
        means=Actions(**means),
        blinks_ms=[round(float(t), 1) for t in blinks],
        blinks_per_min=round(len(blinks) / span_min, 2) if span_min > 0 else None,
    )


def track_results(summary: ClipSummary) -> list[TrackResult]:
    """The `tracks` of a clip's answer: each person's mean emotions, peaks and (if kept) timeline."""
    classes, results = summary.classes, []
    for track_id, t in summary.kept().items():
        mean = t.raw_sum / t.frames
        results.append(
            TrackResult(
                track_id=track_id,
                first_ms=t.first_ms,
                last_ms=t.last_ms,
                frames=t.frames,
                emotions=emotion_scores(mean, classes),
                dominant_emotion=classes[int(np.argmax(mean))],
                peaks={
                    c: Peak(time_ms=float(t.peak_ms[i]), probability=round(float(t.peak_probability[i]), 6))
                    for i, c in enumerate(classes)
                },
                timeline=timeline(t, classes),
                actions=track_actions(t),
            )
        )
    return results


def video_summary(summary: ClipSummary) -> VideoSummary:
    """The whole clip's `summary`: over the people kept, the mean emotions and each one's share as dominant."""
    classes, kept = summary.classes, summary.kept().values()
    face_frames = sum(t.frames for t in kept)
    if face_frames == 0:
        zeros = emotion_scores(np.zeros(len(classes)), classes)
        return VideoSummary(emotions=zeros, dominant_share=zeros, people=0)
    raw_sum = sum(t.raw_sum for t in kept)
    dominant = sum(t.dominant_counts for t in kept)
    return VideoSummary(
        emotions=emotion_scores(raw_sum / face_frames, classes),
        dominant_share=emotion_scores(dominant / face_frames, classes),
        people=len(kept),
    )


def model_refs(models: dict[str, StoredModel]) -> dict[str, ModelRef]:
    """The `models` block of a response: which detector and emotion model produced it."""
    return {role: ModelRef(name=m.name, version=m.version) for role, m in models.items()}
