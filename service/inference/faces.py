"""`Faces`: every face of one image or frame as columns, the one shape a face has from the detector to
the summary, the stream and the study trace.

Each step adds the columns it knows (alignment the crops, the model the probabilities, the tracker the
track ids and smoothed probabilities) and keeps the rows in detection order. Public answers are built
from it only at the edge (`inference/results.py`), so the steps between never see a schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Faces:
    """One row per face. Coordinates are in the image's pixels; landmarks are eye, eye, nose tip, mouth
    corner, mouth corner, each pair left to right in the image."""

    boxes: np.ndarray  # [n, 4] float32 corners (x1, y1, x2, y2)
    landmarks: np.ndarray  # [n, 5, 2] float32
    scores: np.ndarray  # [n] float32 detection scores
    region: np.ndarray  # [n] bool: found by a detection around where a tracked face was expected
    crops: np.ndarray | None = None  # [n, size, size] uint8 aligned for the emotion model
    probabilities: np.ndarray | None = None  # [n, classes] this frame's model output
    track_ids: np.ndarray | None = None  # [n] int64, from the tracker
    smoothed: np.ndarray | None = None  # [n, classes] probabilities smoothed over the track
    descriptions: np.ndarray | None = None  # [n] FaceDescription objects (service.inference.face_mesh), on request

    def __post_init__(self) -> None:
        for column in dataclasses.fields(self):
            value = getattr(self, column.name)
            if value is not None and len(value) != len(self.boxes):
                raise ValueError(f"Faces.{column.name} has {len(value)} rows, not {len(self.boxes)}")

    @classmethod
    def empty(cls) -> Faces:
        return cls(
            boxes=np.empty((0, 4), np.float32),
            landmarks=np.empty((0, 5, 2), np.float32),
            scores=np.empty(0, np.float32),
            region=np.empty(0, bool),
        )

    @classmethod
    def detected(cls, boxes: np.ndarray, landmarks: np.ndarray, scores: np.ndarray, region: bool = False) -> Faces:
        """Detector output: rows sorted by score, highest first."""
        order = np.argsort(-np.asarray(scores), kind="stable")
        return cls(
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4)[order],
            landmarks=np.asarray(landmarks, np.float32).reshape(-1, 5, 2)[order],
            scores=np.asarray(scores, np.float32).reshape(-1)[order],
            region=np.full(len(order), region),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Faces]) -> Faces:
        """The rows of every part, in order; a column is kept only where every part has it."""
        if not parts:
            return cls.empty()
        columns = {}
        for column in dataclasses.fields(cls):
            values = [getattr(p, column.name) for p in parts]
            columns[column.name] = None if any(v is None for v in values) else np.concatenate(values)
        return cls(**columns)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, rows: int | slice | np.ndarray | list[int]) -> Faces:
        """The chosen rows (an index list, a slice or a boolean mask), every column kept."""
        if isinstance(rows, int):
            rows = [rows]
        columns = {c.name: getattr(self, c.name) for c in dataclasses.fields(self)}
        return Faces(**{name: None if value is None else value[rows] for name, value in columns.items()})

    def with_columns(self, **columns: np.ndarray) -> Faces:
        """The same faces with columns added or replaced."""
        return dataclasses.replace(self, **columns)
