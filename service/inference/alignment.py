"""Align each detected face onto the emotion model's 48x48 input by its 5 landmarks.

A similarity transform (rotation, uniform scale, shift) maps the landmarks onto a template
calibrated on FER-2013 itself (`training/calibrate_alignment.py`), so served crops are framed like
the crops the model was trained on.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from service.inference.faces import Faces


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity taking source points [N, 2] onto target points (Umeyama, 1991)."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # forbid reflections
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src.var(axis=0).sum()
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align_face(gray: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warp one face to size x size uint8.

    Big faces shrink a lot; warping straight to 48x48 would alias, so the warp renders at up to 8x
    the size and an area resize brings it down, as FER-2013's own crops were downsampled.
    """
    matrix = similarity_transform(landmarks.astype(np.float64), template.astype(np.float64))
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    factor = min(8, max(1, math.ceil(1 / scale))) if scale > 0 else 1
    big = cv2.warpAffine(
        gray, matrix * factor, (size * factor, size * factor), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return big if factor == 1 else cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def align_faces(image: np.ndarray, faces: Faces, template: np.ndarray, size: int) -> np.ndarray:
    """Crops [N, size, size] uint8 for every face in a BGR image."""
    if not len(faces):
        return np.empty((0, size, size), np.uint8)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.stack([align_face(gray, points, template, size) for points in faces.landmarks])
