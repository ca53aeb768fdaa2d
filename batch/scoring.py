"""The two stages of scoring, as Ray Data runs them: find faces in tasks, classify them in actors.

Both stages are the service's own code (decode_image, the RetinaFace detector, align_faces, the
EmotionClassifier) built from the same Settings, so a face scores the same here as in POST /v1/predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import get_args

import numpy as np
import pyarrow as pa

from batch.inputs import read_bytes
from service.config import Settings
from service.inference.classifier import CropSpec, EmotionClassifier
from service.inference.detector import RetinaFaceDetector
from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image
from service.inference.loading import load_detector
from service.inference.model_store import resolve
from service.inference.pipeline import prepare_faces
from service.schemas import Emotion

CLASSES: tuple[str, ...] = get_args(Emotion)  # the classes of the API's answers, in the models' order

# One row per face; an image without a face, or one that could not be read, has one row with face null.
OUTPUT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("face", pa.int32()),
        ("faces", pa.int32()),
        ("x", pa.float32()),
        ("y", pa.float32()),
        ("width", pa.float32()),
        ("height", pa.float32()),
        ("detection_score", pa.float32()),
        *((name, pa.float32()) for name in CLASSES),
        ("dominant_emotion", pa.string()),
        ("image_width", pa.int32()),
        ("image_height", pa.int32()),
        ("detector_model", pa.string()),
        ("emotion_model", pa.string()),
        ("error", pa.string()),
    ]
)
# Between the stages: the face's aligned crop rides along, and the shard it belongs to.
FACES_SCHEMA = pa.schema(
    [
        ("shard", pa.int32()),
        *(field for field in OUTPUT_SCHEMA if field.name not in (*CLASSES, "dominant_emotion", "emotion_model")),
        ("crop", pa.binary()),
    ]
)


@dataclass(frozen=True)
class FaceFinder:
    """What a detection task needs: the settings, the detector, and the crops the emotion model wants."""

    settings: Settings
    detector: RetinaFaceDetector
    detector_ref: str  # name:version, for the output rows
    spec: CropSpec


@lru_cache(maxsize=1)
def face_finder(settings_json: str) -> FaceFinder:
    """Loaded once per worker process (Ray reuses its workers); one thread, as each task holds one CPU."""
    settings = Settings.model_validate_json(settings_json)
    detector_model, detector = load_detector(settings, threads=1)
    spec = CropSpec.of(resolve(settings.model_store, *emotion_model(settings)))
    return FaceFinder(settings, detector, f"{detector_model.name}:{detector_model.version}", spec)


def emotion_model(settings: Settings) -> tuple[str, str | None]:
    """The default emotion model's name and pinned version (None: the highest)."""
    name = settings.default_emotion_model
    return name, settings.emotion_model_versions().get(name)


def find_faces(batch: pa.Table, settings_json: str) -> pa.Table:
    """Read, decode, detect and align a batch of images (columns shard, path) into FACES_SCHEMA rows."""
    finder = face_finder(settings_json)
    limits = finder.settings.max_file_bytes, finder.settings.max_image_pixels
    rows = []
    for shard, path in zip(batch.column("shard").to_pylist(), batch.column("path").to_pylist()):
        base = {"shard": shard, "path": path, "detector_model": finder.detector_ref}
        try:
            image = decode_image(read_bytes(path), *limits)
        except ImageRejected as rejection:
            rows.append({**base, "faces": 0, "error": rejection.reason})
            continue
        except OSError:
            rows.append({**base, "faces": 0, "error": "unreadable"})
            continue
        base |= {"image_width": image.shape[1], "image_height": image.shape[0]}
        prepared = prepare_faces(image, finder.detector, finder.spec)
        faces = prepared.faces
        if not len(faces):
            rows.append({**base, "faces": 0})
            continue
        for index, (box, score, crop) in enumerate(zip(faces.boxes, faces.scores, faces.crops)):
            x1, y1, x2, y2 = (float(v) for v in box)
            rows.append(
                {
                    **base,
                    "face": index,
                    "faces": len(faces),
                    "x": x1,
                    "y": y1,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "detection_score": float(score),
                    "crop": crop.tobytes(),
                }
            )
    return pa.Table.from_pylist(rows, schema=FACES_SCHEMA)


class EmotionScorer:
    """Holds one emotion model per actor and classifies every crop of a batch in one model call
    (Ray Data hands it at most the job's `model_batch` rows at a time)."""

    def __init__(self, settings_json: str, threads: int) -> None:
        settings = Settings.model_validate_json(settings_json)
        stored = resolve(settings.model_store, *emotion_model(settings))
        self.classifier = EmotionClassifier(stored, threads)
        if self.classifier.classes != CLASSES:
            raise ValueError(f"{stored.name} predicts {self.classifier.classes}, not the FER-2013 classes")
        self.model_ref = f"{stored.name}:{stored.version}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        has_face = np.array([crop is not None for crop in batch.column("crop").to_pylist()], bool)
        probabilities = np.full((len(batch), len(CLASSES)), np.nan, np.float32)
        if has_face.any():
            size = self.classifier.size
            blob = b"".join(batch.filter(pa.array(has_face)).column("crop").to_pylist())
            crops = np.frombuffer(blob, np.uint8).reshape(-1, size, size)
            probabilities[has_face] = self.classifier(crops)
        dominant = [CLASSES[i] if face else None for i, face in zip(probabilities.argmax(1), has_face)]
        table = batch.drop_columns(["crop"])
        for column, name in enumerate(CLASSES):
            table = table.append_column(name, pa.array(probabilities[:, column], mask=~has_face))
        table = table.append_column("dominant_emotion", pa.array(dominant, pa.string()))
        return table.append_column("emotion_model", pa.array([self.model_ref] * len(batch), pa.string()))
