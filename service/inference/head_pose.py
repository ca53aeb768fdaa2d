"""Head pose from the detector's five landmarks: a generic 3D face fitted to them.

Five points fix yaw and roll well and pitch roughly (the model's depths are an average face's), which
is what attention needs: whether a face is turned to the screen, not its exact angle. The camera is
modelled with a long focal length around the face (near-orthographic), so the angles do not depend
on the image size or where the face is in it.
"""

from __future__ import annotations

import cv2
import numpy as np

# An average face in camera axes (x to the image's right, y down, z away from the camera), nose tip at
# the origin, in millimetres: eyes, nose tip, mouth corners, in the detector's landmark order. Its x and
# y are the detector's median layout on FER-2013 training faces (so their typical face reads as
# frontal); its depths are an average adult face's.
FACE_MODEL = np.array(
    [
        [-32.0, -37.5, 26.0],
        [32.0, -37.5, 26.0],
        [0.0, 0.0, 0.0],
        [-24.5, 29.0, 24.0],
        [24.5, 29.0, 24.0],
    ],
    dtype=np.float64,
)
FOCAL_IN_FACE_WIDTHS = 20.0  # long enough for near-orthographic projection, short enough to stay stable


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees: yaw > 0 when the face turns toward the image's right, pitch > 0 when
    it tilts up, roll > 0 when it leans clockwise in the image. None when the points are degenerate."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    width = float(np.ptp(points[:, 0]))
    if not np.all(np.isfinite(points)) or width < 1.0:
        return None
    focal = FOCAL_IN_FACE_WIDTHS * width
    centre = points.mean(axis=0)
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], dtype=np.float64)
    found, rotation_vector, _ = cv2.solvePnP(FACE_MODEL, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not found:
        return None
    rotation, _ = cv2.Rodrigues(rotation_vector)
    return euler_degrees(rotation)


def euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll of a face rotation R = Rz(roll) @ Ry(yaw) @ Rx(pitch) in camera axes."""
    yaw = np.degrees(np.arcsin(np.clip(-rotation[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2]))
    roll = np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))
    # Camera y points down: a face tilting up turns about x the negative way.
    return float(-yaw), float(-pitch), float(roll)
