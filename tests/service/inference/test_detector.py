import cv2
import numpy as np
import pytest

from service.config import PROJECT_ROOT, Settings
from service.inference.detector import RetinaFaceDetector, prior_boxes
from service.inference.faces import Faces
from service.inference.model_store import resolve
from tests.helpers.faces import fer_faces
from training.scenes import iou, place_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

MATCH_IOU = 0.4


@pytest.fixture(scope="module")
def detector(settings: Settings) -> RetinaFaceDetector:
    model = resolve(settings.model_store, settings.detector_model)
    return RetinaFaceDetector(model, max_side=640, score_threshold=0.6, nms_threshold=0.4, min_face_size=16)


def matched(truth: np.ndarray, detections: Faces) -> bool:
    return any(iou(truth, box) >= MATCH_IOU for box in detections.boxes)


def test_finds_every_placed_face(detector: RetinaFaceDetector) -> None:
    faces = fer_faces("happy", 3) + fer_faces("surprise", 3)
    scene = place_faces(faces, 480, 720, 128, seed=1)
    detections = detector.detect(scene.image)
    assert len(detections) == len(faces)
    assert all(matched(box, detections) for box in scene.boxes)
    scores = detections.scores.tolist()
    assert scores == sorted(scores, reverse=True)


def test_landmarks_fall_inside_their_face(detector: RetinaFaceDetector) -> None:
    scene = place_faces(fer_faces("neutral", 2), 300, 500, 160, seed=2)
    found = detector.detect(scene.image)
    assert len(found) == 2
    for (x1, y1, x2, y2), landmarks in zip(found.boxes, found.landmarks):
        assert ((landmarks[:, 0] > x1) & (landmarks[:, 0] < x2)).all()
        assert ((landmarks[:, 1] > y1) & (landmarks[:, 1] < y2)).all()
        left_eye, right_eye = landmarks[0], landmarks[1]
        assert left_eye[0] < right_eye[0]


def test_no_faces_in_a_faceless_scene(detector: RetinaFaceDetector) -> None:
    assert len(detector.detect(place_faces([], 480, 640, 128, seed=3).image)) == 0


def test_boxes_map_back_from_the_working_resolution(detector: RetinaFaceDetector) -> None:
    """A 2400px photo is detected at 640px; boxes must come back in original pixels."""
    scene = place_faces(fer_faces("sad", 2), 1600, 2400, 480, seed=4)
    detections = detector.detect(scene.image)
    assert all(matched(box, detections) for box in scene.boxes)


def test_grayscale_photo_converted_to_bgr(detector: RetinaFaceDetector) -> None:
    scene = place_faces(fer_faces("angry", 1), 240, 320, 144, seed=5)
    gray = cv2.cvtColor(cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert matched(scene.boxes[0], detector.detect(gray))


def test_prior_count_matches_the_network_output(detector: RetinaFaceDetector) -> None:
    blob = cv2.dnn.blobFromImage(np.zeros((96, 160, 3), np.uint8), 1.0, mean=detector.mean)
    assert len(prior_boxes(96, 160, detector.strides, detector.anchor_sizes)) == detector.run(blob)["conf"].shape[1]


def test_onnxruntime_backend_finds_the_same_faces(settings: Settings, detector: RetinaFaceDetector) -> None:
    model = resolve(settings.model_store, settings.detector_model)
    other = RetinaFaceDetector(model, 640, 0.6, 0.4, 16, backend="onnxruntime")
    scene = place_faces(fer_faces("fear", 3), 360, 640, 140, seed=6)
    ours, theirs = detector.detect(scene.image), other.detect(scene.image)
    assert len(ours) == len(theirs) == 3
    np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=0.5)
    np.testing.assert_allclose(ours.landmarks, theirs.landmarks, atol=0.5)


SAMPLES = PROJECT_ROOT / ".cache" / "scikit-image" / "skimage" / "data"


@pytest.mark.skipif(not (SAMPLES / "chelsea.png").is_file(), reason="scikit-image's sample photos: make samples")
def test_a_cat_gives_no_face_and_a_person_does(detector: RetinaFaceDetector) -> None:
    """scikit-image's cat photo scores 0.32 as a face, under the 0.6 floor; its astronaut 1.0."""
    assert len(detector.detect(cv2.imread(str(SAMPLES / "chelsea.png")))) == 0
    (score,) = detector.detect(cv2.imread(str(SAMPLES / "astronaut.png"))).scores
    assert score > 0.99
