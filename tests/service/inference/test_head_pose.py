"""Head pose from five landmarks: known rotations of the face model recovered, and real faces read as
frontal and as mirror images of themselves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.config import Settings
from service.inference.head_pose import FACE_MODEL, head_pose
from service.inference.loading import load_detector
from tests.helpers.faces import fer_faces
from training.scenes import place_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def projected(yaw: float, pitch: float, roll: float, distance_mm: float = 600.0) -> np.ndarray:
    """The model's five points seen by a 640-pixel-focal camera after the given rotation."""
    y, p, r = np.radians([-yaw, -pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    points = (rz @ ry @ rx @ FACE_MODEL.T).T + np.array([0, 0, distance_mm])
    return points[:, :2] / points[:, 2:] * 640 + np.array([320, 240])


@pytest.mark.parametrize("pose", [(0, 0, 0), (25, 0, 0), (-40, 10, 0), (0, -20, 5), (15, 15, -12)])
def test_known_rotations_are_recovered(pose: tuple[float, float, float]) -> None:
    assert head_pose(projected(*pose)) == pytest.approx(pose, abs=2.5)


def test_degenerate_points_have_no_pose() -> None:
    assert head_pose(np.zeros((5, 2))) is None
    assert head_pose(np.full((5, 2), np.nan)) is None


def test_real_faces_read_frontal_and_mirror_to_the_opposite_yaw() -> None:
    _, detector = load_detector(Settings())
    poses, mirrored = [], []
    for face in fer_faces("neutral", 40):
        image = place_faces([face], 240, 320, 140, seed=3).image
        found, flipped = detector.detect(image), detector.detect(cv2.flip(image, 1))
        if len(found) and len(flipped):
            poses.append(head_pose(found.landmarks[0]))
            mirrored.append(head_pose(flipped.landmarks[0]))
    poses, mirrored = np.array(poses), np.array(mirrored)
    assert len(poses) >= 30
    # FER-2013's faces are mostly frontal: the typical one reads so.
    assert abs(np.median(poses[:, 0])) < 8 and abs(np.median(poses[:, 1])) < 12
    # A mirror image turns the other way by as much, and leans the other way.
    assert np.median(np.abs(poses[:, 0] + mirrored[:, 0])) < 6
    assert np.median(np.abs(poses[:, 2] + mirrored[:, 2])) < 4
