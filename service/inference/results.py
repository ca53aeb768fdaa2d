"""Pipeline results as the public schema, shared by the HTTP API and the command line."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from service.inference.detector import Detection
from service.inference.head_pose import head_pose
from service.inference.model_store import StoredModel
from service.inference.pipeline import AnalysedImage
from service.schemas import Box, EmotionScores, Face, HeadPose, ImageResult, Landmarks, ModelRef, Point

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MAX_FILENAME_CHARS = 255
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_filename(name: str | None) -> str | None:
    """A client's file name as it may be echoed: its last path part, no control characters, at most 255 characters."""
    if name is None:
        return None
    base = CONTROL_CHARACTERS.sub("", name).replace("\\", "/").rsplit("/", 1)[-1]
    return base[:MAX_FILENAME_CHARS] or None


def emotion_scores(values: Sequence[float] | np.ndarray, classes: tuple[str, ...]) -> EmotionScores:
    """The one place a distribution becomes the public `emotions` object, rounded to 6 places."""
    return EmotionScores(**dict(zip(classes, (round(float(v), 6) for v in values))))


def face_result(detection: Detection, probs: list[float], classes: tuple[str, ...]) -> Face:
    x1, y1, x2, y2 = (round(float(v), 1) for v in detection.box)
    points = {
        n: Point(x=round(float(x), 1), y=round(float(y), 1)) for n, (x, y) in zip(LANDMARK_NAMES, detection.landmarks)
    }
    return Face(
        box=Box(x=x1, y=y1, width=round(x2 - x1, 1), height=round(y2 - y1, 1)),
        landmarks=Landmarks(**points),
        head_pose=pose_result(detection.landmarks),
        detection_score=round(detection.score, 4),
        emotions=emotion_scores(probs, classes),
        dominant_emotion=classes[max(range(len(probs)), key=probs.__getitem__)],
    )


def pose_result(landmarks: np.ndarray) -> HeadPose | None:
    pose = head_pose(landmarks)
    return None if pose is None else HeadPose(**dict(zip(("yaw", "pitch", "roll"), (round(a, 1) for a in pose))))


def image_result(filename: str | None, analysed: AnalysedImage, classes: tuple[str, ...]) -> ImageResult:
    faces = [face_result(d, p, classes) for d, p in zip(analysed.detections, analysed.probabilities.tolist())]
    return ImageResult(filename=safe_filename(filename), width=analysed.width, height=analysed.height, faces=faces)


def model_refs(models: dict[str, StoredModel]) -> dict[str, ModelRef]:
    """The `models` block of a response: which detector and emotion model produced it."""
    return {role: ModelRef(name=m.name, version=m.version) for role, m in models.items()}
