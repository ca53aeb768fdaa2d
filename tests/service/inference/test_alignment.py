import cv2
import numpy as np
import pytest

from service.inference.alignment import align_face, similarity_transform
from tests.helpers.faces import fer_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 0.45, np.array([7.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ (scale * rotation).T + shift
    matrix = similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_aligning_an_upscaled_face_restores_the_original() -> None:
    """Landmarks placed where the template says, on a rotated 5x copy: alignment must undo both."""
    face = fer_faces("happy", 1)[0]
    template = np.array([[15.2, 18.8], [32.8, 18.8], [24.0, 28.9], [17.0, 36.8], [31.0, 36.8]])
    scale, angle = 5.0, np.deg2rad(20)
    forward = cv2.getRotationMatrix2D((120, 120), np.rad2deg(angle), 1.0) @ np.vstack(
        [np.diag([scale, scale, 1])[:2], [0, 0, 1]]
    )
    big = cv2.warpAffine(face, forward, (240, 240), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    landmarks = np.hstack([template, np.ones((5, 1))]) @ forward.T
    crop = align_face(big, landmarks, template, 48)
    assert crop.shape == (48, 48)
    inner = (slice(8, 40), slice(8, 40))  # the border was padded by replication
    correlation = np.corrcoef(crop[inner].ravel().astype(float), face[inner].ravel().astype(float))[0, 1]
    assert correlation > 0.95
