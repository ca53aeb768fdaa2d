import numpy as np
import pytest

from service.inference.faces import Faces
from service.tracking.tracker import CutDetector, FaceTracker, iou_matrix, smoothing_weight
from tests.helpers.clips import clip_frames

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

HAPPY = np.array([0, 0, 0, 1, 0, 0, 0], np.float64)
SAD = np.array([0, 0, 0, 0, 1, 0, 0], np.float64)


def face(x: float, y: float, size: float = 80) -> Faces:
    box = np.array([x, y, x + size, y + size])
    return Faces.detected(box, np.zeros((5, 2)), [0.9])


def seen(faces: list[Faces], probabilities: np.ndarray) -> Faces:
    """A frame's faces, classified."""
    return Faces.concatenate(faces).with_columns(probabilities=probabilities)


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]], float)
    assert iou_matrix(a, b) == pytest.approx(np.array([[1.0, 0.0, 1 / 3]]))


def test_two_people_crossing_the_frame_keep_their_ids() -> None:
    tracker = FaceTracker(smoothing_s=0, max_gap_s=1)
    ids = []
    for step in range(30):  # one walks right, one left, 20 px per frame at 10 fps; they pass each other
        left, right = face(40 + 20 * step, 100), face(640 - 20 * step, 150)  # boxes overlap as they pass
        faces = tracker.update(step / 10, seen([right, left] if step % 2 else [left, right], np.stack([HAPPY, SAD])))
        ids.append({round(float(box[1])): int(track_id) for box, track_id in zip(faces.boxes, faces.track_ids)})
    assert [d[100] for d in ids] == [1] * 30  # keyed by height in the frame, which each keeps
    assert [d[150] for d in ids] == [2] * 30


def test_a_track_survives_a_short_gap_and_ends_after_a_long_one() -> None:
    tracker = FaceTracker(smoothing_s=0, max_gap_s=1.0)
    assert tracker.update(0.0, seen([face(100, 100)], HAPPY[None])).track_ids[0] == 1
    assert len(tracker.update(0.5, seen([], np.empty((0, 7))))) == 0
    assert tracker.update(0.8, seen([face(110, 100)], HAPPY[None])).track_ids[0] == 1  # missed for 0.8 s: same person
    assert tracker.update(2.0, seen([face(120, 100)], HAPPY[None])).track_ids[0] == 2  # gone for 1.2 s: a new track


def test_a_reset_starts_new_tracks_in_the_same_place() -> None:
    tracker = FaceTracker(smoothing_s=0, max_gap_s=1.0)
    tracker.update(0.0, seen([face(100, 100)], HAPPY[None]))
    tracker.reset()
    assert tracker.update(0.1, seen([face(100, 100)], HAPPY[None])).track_ids[0] == 2


def test_smoothing_depends_on_seconds_not_frames() -> None:
    """A switch from happy to sad reaches the same smoothed value after one second at 5 and at 30 fps."""
    after_one_second = []
    for fps in (5, 30):
        tracker = FaceTracker(smoothing_s=1.0, max_gap_s=1.0)
        tracker.update(0.0, seen([face(100, 100)], HAPPY[None]))
        for n in range(1, fps + 1):
            tracked = tracker.update(n / fps, seen([face(100, 100)], SAD[None]))
        after_one_second.append(tracked.smoothed[0, 4])
        assert tracked.probabilities[0, 4] == 1.0
    assert after_one_second[0] == pytest.approx(after_one_second[1]) == pytest.approx(1 - np.exp(-1))
    assert smoothing_weight(0.2, 0) == 1.0  # no smoothing: the frame alone


def test_cuts_between_real_clips_are_found_and_movement_is_not() -> None:
    detector = CutDetector()
    first, second = clip_frames("asl-thanks.mkv"), clip_frames("one-person-head-pose.gif")
    assert not any(detector.is_cut(frame) for frame in first[::6])  # a signer moving her hands
    assert detector.is_cut(second[0])
    assert not any(detector.is_cut(frame) for frame in second[1::6])  # a man turning his head
