"""Give each face an identity across frames, and smooth its emotions over time.

One tracker serves both the video endpoint and the live stream. It is SORT-style (Bewley et al.,
2016): each track predicts where its box will be with a constant-velocity Kalman filter, and
detections are matched to the predictions by box overlap, best overlap first. A track survives
a few missed frames (a turned head, a blink of the detector) and ends when its face has been
gone for longer than `max_gap_s`. Time is in seconds throughout, so the filter, the gap and the
smoothing behave the same at 5 and at 30 frames per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from service.inference.faces import Faces

# Matches below this overlap start a new track instead.
MIN_IOU = 0.2
# Kalman noise, in box sides (positions) and box sides per second (velocities): faces move
# slowly relative to their own size, and detector boxes jitter by a few percent.
MEASUREMENT_NOISE = 0.05
PROCESS_NOISE = 0.5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in a [N, 4] with every box in b [M, 4] (x1, y1, x2, y2)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class BoxFilter:
    """Constant-velocity Kalman filter over a box's centre and size: state (cx, cy, w, h) and their rates."""

    def __init__(self, box: np.ndarray) -> None:
        self.x = np.zeros(8)
        self.x[:4] = to_centre(box)
        side = max(self.x[2], self.x[3], 1.0)
        self.P = np.diag([1.0] * 4 + [10.0] * 4) * (MEASUREMENT_NOISE * side) ** 2
        self.H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def predict(self, dt: float) -> np.ndarray:
        """Move the state dt seconds ahead; returns the predicted box (x1, y1, x2, y2)."""
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt
        side = max(self.x[2], self.x[3], 1.0)
        q = np.diag([dt**3 / 3] * 4 + [dt] * 4) * (PROCESS_NOISE * side) ** 2
        self.x = f @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = f @ self.P @ f.T + q
        return to_corners(self.x[:4])

    def peek(self, dt: float) -> np.ndarray:
        """The box expected dt seconds after the last update or prediction, without moving the state."""
        centre = self.x[:4] + self.x[4:] * dt
        centre[2:] = np.maximum(centre[2:], 1.0)
        return to_corners(centre)

    def update(self, box: np.ndarray) -> None:
        side = max(self.x[2], self.x[3], 1.0)
        r = np.eye(4) * (MEASUREMENT_NOISE * side) ** 2
        s = self.H @ self.P @ self.H.T + r
        gain = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + gain @ (to_centre(box) - self.H @ self.x)
        self.P = (np.eye(8) - gain @ self.H) @ self.P


def to_centre(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def to_corners(state: np.ndarray) -> np.ndarray:
    cx, cy, w, h = state
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def smoothing_weight(dt: float, smoothing_s: float) -> float:
    """Weight of a new answer in an exponential moving average with time constant `smoothing_s`.

    Depends on the time since the last answer, not on the number of frames: at 30 fps each answer
    counts less than at 5 fps, and the average forgets at the same rate in seconds.
    """
    if smoothing_s <= 0:
        return 1.0
    return 1.0 - math.exp(-dt / smoothing_s)


@dataclass
class Track:
    track_id: int
    filter: BoxFilter
    last_seen_s: float
    smoothed: np.ndarray
    predicted: np.ndarray = field(default_factory=lambda: np.zeros(4))


class FaceTracker:
    """Links each frame's detections to the faces of earlier frames. Not thread-safe: one per clip or stream."""

    def __init__(self, smoothing_s: float, max_gap_s: float) -> None:
        self.smoothing_s = smoothing_s
        self.max_gap_s = max_gap_s
        self.tracks: list[Track] = []
        self.next_id = 1
        self.last_time_s: float | None = None

    def reset(self) -> None:
        """End every track, e.g. at a cut: the next faces are new people even where the old ones stood."""
        self.tracks = []

    def expected_boxes(self, time_s: float) -> np.ndarray:
        """[N, 4]: where each live track's face should be at time_s."""
        since = 0.0 if self.last_time_s is None else max(0.0, time_s - self.last_time_s)
        return np.array([t.filter.peek(since) for t in self._live(time_s)]).reshape(-1, 4)

    def _live(self, time_s: float) -> list[Track]:
        """Tracks whose face was seen within the gap a track survives."""
        return [t for t in self.tracks if time_s - t.last_seen_s <= self.max_gap_s]

    def update(self, time_s: float, faces: Faces) -> Faces:
        """Assign the frame's classified faces to tracks: the same rows, with `track_ids` and `smoothed`."""
        if faces.probabilities is None:
            raise ValueError("the tracker smooths probabilities: classify the faces first")
        dt = 0.0 if self.last_time_s is None else max(0.0, time_s - self.last_time_s)
        self.last_time_s = time_s
        self.tracks = self._live(time_s)
        for track in self.tracks:
            track.predicted = track.filter.predict(dt)
        assigned = self._match(faces.boxes)

        track_ids = np.zeros(len(faces), np.int64)
        smoothed = np.zeros(faces.probabilities.shape)
        for index, (box, raw) in enumerate(zip(faces.boxes, faces.probabilities)):
            track = assigned.get(index)
            if track is None:
                track = Track(self.next_id, BoxFilter(box), time_s, raw.astype(np.float64))
                self.next_id += 1
                self.tracks.append(track)
            else:
                weight = smoothing_weight(time_s - track.last_seen_s, self.smoothing_s)
                track.smoothed = (1 - weight) * track.smoothed + weight * raw
                track.filter.update(box)
                track.last_seen_s = time_s
            track_ids[index], smoothed[index] = track.track_id, track.smoothed
        return faces.with_columns(track_ids=track_ids, smoothed=smoothed)

    def _match(self, boxes: np.ndarray) -> dict[int, Track]:
        """Greedy matching by overlap, best pair first: with a handful of faces it equals the optimum in practice."""
        if not self.tracks or not len(boxes):
            return {}
        overlaps = iou_matrix(boxes, np.array([t.predicted for t in self.tracks]))
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for flat in np.argsort(-overlaps, axis=None):
            det, trk = np.unravel_index(flat, overlaps.shape)
            if overlaps[det, trk] < MIN_IOU:
                break
            if det in assigned or trk in used:
                continue
            assigned[int(det)] = self.tracks[trk]
            used.add(int(trk))
        return assigned


class CutDetector:
    """Flags hard cuts by comparing colour histograms of consecutive analysed frames.

    Movement barely changes a frame's hue-saturation histogram; a cut to another shot changes it
    wholesale. On the real clips in the tests, consecutive frames 200 ms apart differ by at most
    0.09 (Bhattacharyya distance) and cuts between scenes by 0.43 or more. Cheap enough for every
    analysed frame: it looks at a 64x36 thumbnail.
    """

    def __init__(self, min_distance: float = 0.25) -> None:
        self.min_distance = min_distance
        self.previous: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        thumb = cv2.cvtColor(cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
        histogram = cv2.calcHist([thumb], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(histogram, histogram, 1, 0, cv2.NORM_L1)
        previous, self.previous = self.previous, histogram
        if previous is None:
            return False
        return cv2.compareHist(previous, histogram, cv2.HISTCMP_BHATTACHARYYA) > self.min_distance
