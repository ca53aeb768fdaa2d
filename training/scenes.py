"""Synthetic photos built from real FER-2013 faces, with the true box of each face known.

A 48x48 face is upscaled and pasted onto a larger textured canvas, as a face appears in a photo.
Tests and the pipeline evaluation use these to check detection (by IoU) and classification
end to end on real faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # HxWx3 BGR uint8
    boxes: np.ndarray  # [faces, 4] true (x1, y1, x2, y2)


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colour gradient with mild noise: plain enough to hold no faces, not a flat fill."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    corners = rng.uniform(60, 200, size=(2, 3)).astype(np.float32)
    mix = (xs / max(width - 1, 1) * 0.5 + ys / max(height - 1, 1) * 0.5)[..., None]
    canvas = corners[0] * (1 - mix) + corners[1] * mix + rng.normal(0, 4, size=(height, width, 3))
    return canvas.clip(0, 255).astype(np.uint8)


def place_faces(faces: list[np.ndarray], height: int, width: int, face_size: int, seed: int = 0) -> Scene:
    """Paste each grayscale face, upscaled to face_size, on a grid cell of its own (no overlaps)."""
    rng = np.random.default_rng(seed)
    canvas = background(height, width, rng)
    columns = max(1, width // (face_size * 3 // 2))
    rows = -(-len(faces) // columns)
    cell_h, cell_w = height // max(rows, 1), width // columns
    if cell_h < face_size or cell_w < face_size:
        raise ValueError(f"{len(faces)} faces of {face_size}px do not fit a {width}x{height} canvas")
    boxes = []
    for index, face in enumerate(faces):
        row, col = divmod(index, columns)
        y = row * cell_h + int(rng.integers(0, cell_h - face_size + 1))
        x = col * cell_w + int(rng.integers(0, cell_w - face_size + 1))
        big = cv2.resize(face, (face_size, face_size), interpolation=cv2.INTER_CUBIC)
        canvas[y : y + face_size, x : x + face_size] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        boxes.append((x, y, x + face_size, y + face_size))
    return Scene(canvas, np.array(boxes, dtype=np.float32).reshape(-1, 4))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
