"""When a clip or stream detects faces over the whole frame, and when only around the faces it tracks.

Full-frame detection at the frame's resolution is most of the work of a frame. Between key frames,
faces already tracked are looked for only in a region around where the Kalman filter expects them,
at the resolution their size needs. A key frame (a full detection) comes first, after a cut, every
`key_interval_s`, and right after a frame in which an expected face was not found (it left, turned
away, or moved further than its region). A new face entering between key frames is found at the
next one: at most `key_interval_s` late.

The schedule keeps its own geometry-only tracker, updated where frames are detected (the reading
thread, frames in order), so it never waits on classification or on the tracker that names people.
"""

from __future__ import annotations

import numpy as np

from service.inference.faces import Faces
from service.tracking.tracker import FaceTracker, iou_matrix

# An expected face counts as found when a region detection overlaps its predicted box this much.
FOUND_IOU = 0.3


class DetectionSchedule:
    def __init__(self, key_interval_s: float, max_gap_s: float) -> None:
        self.key_interval_s = key_interval_s
        self.positions = FaceTracker(smoothing_s=0.0, max_gap_s=max_gap_s)
        self.last_key_s: float | None = None
        self.missed = False

    def plan(self, time_s: float, cut: bool) -> np.ndarray | None:
        """None for a key frame (detect over the whole frame), else the boxes [N, 4] where the tracked faces
        should be at time_s (possibly none: then the frame has no face until the next key frame)."""
        if cut:
            self.positions.reset()
        due = self.last_key_s is None or time_s - self.last_key_s >= self.key_interval_s - 1e-6
        if cut or self.missed or due:
            self.last_key_s, self.missed = time_s, False
            return None
        return self.positions.expected_boxes(time_s)

    def seen(self, time_s: float, expected: np.ndarray | None, faces: Faces) -> None:
        """What the frame's detection found: the positions move on, and a missed face calls a key frame."""
        if expected is not None and len(expected):
            boxes = faces.boxes
            found = (iou_matrix(expected, boxes) >= FOUND_IOU).any(axis=1) if len(boxes) else np.zeros(len(expected))
            self.missed = not bool(np.all(found))
        self.positions.update(time_s, faces.with_columns(probabilities=np.zeros((len(faces), 1), np.float32)))
