"""Face detection behind a small interface, with RetinaFace run in onnxruntime (or OpenCV DNN).

Another backend (YuNet through `cv2.FaceDetectorYN`, say) only has to return `Faces` from `detect`;
the rest of the pipeline never sees which one ran.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from service.inference.faces import Faces
from service.inference.model_store import StoredModel, onnxruntime_session


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> Faces:
        """Faces in an HxWx3 BGR uint8 image, highest score first."""

    def detect_around(self, image: np.ndarray, expected: np.ndarray, face_px: int, margin: float) -> Faces:
        """Faces near the expected boxes [N, 4] only, each region at the resolution its face needs."""
        ...


@lru_cache(maxsize=16)
def prior_boxes(height: int, width: int, strides: tuple, anchor_sizes: tuple) -> np.ndarray:
    """Anchor centres and sizes [N, 4] (cx, cy, size, size) in pixels, in the network's output order:
    per stride, rows then columns, then each anchor size."""
    priors = []
    for stride, sizes in zip(strides, anchor_sizes):
        rows, cols = -(-height // stride), -(-width // stride)
        cy, cx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1).astype(np.float32)
        centres = (centres + 0.5) * stride
        for_cell = [np.hstack([centres, np.full((len(centres), 2), size, np.float32)]) for size in sizes]
        priors.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(priors)


class OpenCvRunner:
    """The network in OpenCV DNN. A net holds per-call state: one caller at a time, OpenCV
    parallelises inside the call."""

    def __init__(self, onnx_path: Path, threads: int) -> None:
        if threads:
            cv2.setNumThreads(threads)  # process-wide, as OpenCV's pool is
        self.net = cv2.dnn.readNetFromONNX(str(onnx_path))
        self.output_names = list(self.net.getUnconnectedOutLayersNames())
        self.lock = threading.Lock()

    def __call__(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        with self.lock:
            self.net.setInput(blob)
            return dict(zip(self.output_names, self.net.forward(self.output_names)))


class OnnxRuntimeRunner:
    """The same network in onnxruntime, whose sessions take concurrent calls."""

    def __init__(self, onnx_path: Path, threads: int) -> None:
        self.session = onnxruntime_session(onnx_path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: blob})))


RUNNERS = {"opencv": OpenCvRunner, "onnxruntime": OnnxRuntimeRunner}


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25: prior-box decoding, score threshold and NMS done here, in numpy."""

    def __init__(
        self,
        model: StoredModel,
        max_side: int,
        score_threshold: float,
        nms_threshold: float,
        min_face_size: int,
        backend: str = "opencv",
        threads: int = 0,
    ) -> None:
        meta = model.metadata
        self.mean = tuple(meta["preprocessing"]["mean_bgr"])
        self.multiple = int(meta["preprocessing"]["size_multiple"])
        self.strides = tuple(meta["priors"]["strides"])
        self.anchor_sizes = tuple(tuple(s) for s in meta["priors"]["anchor_sizes"])
        self.center_variance, self.size_variance = meta["priors"]["variances"]
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.min_face_size = min_face_size
        self.run = RUNNERS[backend](model.onnx_path, threads)

    def detect(self, image: np.ndarray) -> Faces:
        height, width = image.shape[:2]
        return self._detect_scaled(image, min(1.0, self.max_side / max(height, width)))

    def detect_around(self, image: np.ndarray, expected: np.ndarray, face_px: int, margin: float) -> Faces:
        """Detect in a region around each expected box (the box grown by `margin` of its side on every side),
        scaled so the face there is about `face_px` across: a small face keeps full resolution, a large one
        costs far fewer pixels. Results in image pixels, marked as region detections, overlaps merged."""
        height, width = image.shape[:2]
        found: list[Faces] = []
        for box in expected:
            side = float(max(box[2] - box[0], box[3] - box[1], 1.0))
            x1, y1 = max(0, int(box[0] - margin * side)), max(0, int(box[1] - margin * side))
            x2, y2 = min(width, int(box[2] + margin * side) + 1), min(height, int(box[3] + margin * side) + 1)
            if x2 - x1 < self.min_face_size or y2 - y1 < self.min_face_size:
                continue  # the face is expected outside the frame
            offset = np.array([x1, y1], np.float32)
            region = np.ascontiguousarray(image[y1:y2, x1:x2])
            faces = self._detect_scaled(region, min(1.0, face_px / side))
            found.append(Faces.detected(faces.boxes + np.tile(offset, 2), faces.landmarks + offset, faces.scores, True))
        return self._merged(Faces.concatenate(found))

    def _merged(self, faces: Faces) -> Faces:
        """One detection per face where regions overlapped, highest score first."""
        if len(faces) < 2:
            return faces
        xywh = np.hstack([faces.boxes[:, :2], faces.boxes[:, 2:] - faces.boxes[:, :2]])
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), faces.scores.tolist(), self.score_threshold, self.nms_threshold)
        kept = faces[np.asarray(chosen, dtype=int).reshape(-1)]
        return kept[np.argsort(-kept.scores, kind="stable")]

    def _detect_scaled(self, image: np.ndarray, scale: float) -> Faces:
        """Faces in the image, detected at `scale` (at most 1) of its size."""
        height, width = image.shape[:2]
        work = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # Pad to the coarsest stride so every prior lines up with the feature maps.
        pad_h, pad_w = -work.shape[0] % self.multiple, -work.shape[1] % self.multiple
        if pad_h or pad_w:
            work = cv2.copyMakeBorder(work, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=self.mean)
        blob = cv2.dnn.blobFromImage(work, 1.0, mean=self.mean, swapRB=False)
        return self._decode(self.run(blob), work.shape[0], work.shape[1], scale, width, height)

    def _decode(self, outputs: dict, height: int, width: int, scale: float, orig_w: int, orig_h: int) -> Faces:
        scores = outputs["conf"][0, :, 1]
        keep = np.flatnonzero(scores >= self.score_threshold)
        if keep.size == 0:
            return Faces.empty()
        priors = prior_boxes(height, width, self.strides, self.anchor_sizes)[keep]
        loc, landmarks, scores = outputs["loc"][0, keep], outputs["landmarks"][0, keep], scores[keep]
        centres = priors[:, :2] + loc[:, :2] * self.center_variance * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * self.size_variance)
        boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]) / scale
        points = (
            priors[:, None, :2] + landmarks.reshape(-1, 5, 2) * self.center_variance * priors[:, None, 2:]
        ) / scale

        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, orig_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, orig_h)
        xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold)
        chosen = np.asarray(chosen, dtype=int).reshape(-1)
        chosen = chosen[np.minimum(xywh[chosen, 2], xywh[chosen, 3]) >= self.min_face_size]
        return Faces.detected(boxes[chosen], points[chosen], scores[chosen])
