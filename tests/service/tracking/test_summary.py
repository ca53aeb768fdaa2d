"""ClipSummary alone, on tracker output made by hand: the figures of /v1/video's `tracks` and `summary`."""

from __future__ import annotations

import numpy as np
import pytest

from service.inference.faces import Faces
from service.results import track_results, video_summary
from service.tracking.summary import AnalysedFrame, ClipSummary

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
HAPPY = np.array([0.0, 0, 0, 0.8, 0.1, 0, 0.1])
SAD = np.array([0.0, 0, 0.1, 0.1, 0.7, 0, 0.1])


def sighting(track_id: int, raw: np.ndarray, smoothed: np.ndarray | None = None) -> Faces:
    box = np.array([10.0, 10, 60, 60]) + track_id * 100
    detected = Faces.detected(box, np.zeros((5, 2)) + box[:2], [0.9])
    smoothed = raw if smoothed is None else smoothed
    return detected.with_columns(probabilities=raw[None], track_ids=np.array([track_id]), smoothed=smoothed[None])


def add(summary: ClipSummary, time_ms: float, faces: list[Faces]) -> None:
    none = np.empty((0, len(CLASSES)))
    empty = Faces.empty().with_columns(probabilities=none, track_ids=np.empty(0, int), smoothed=none)
    summary.add(AnalysedFrame(time_ms, Faces.concatenate(faces or [empty])))


def test_tracks_average_their_raw_emotions_and_find_their_peaks() -> None:
    summary = ClipSummary(CLASSES, min_track_frames=2, keep_timeline=True)
    add(summary, 0, [sighting(1, HAPPY), sighting(2, SAD)])
    add(summary, 200, [sighting(1, SAD, smoothed=(HAPPY + SAD) / 2), sighting(2, SAD)])
    add(summary, 400, [sighting(1, HAPPY)])
    first, second = track_results(summary)
    assert (first.track_id, first.frames, first.first_ms, first.last_ms) == (1, 3, 0, 400)
    assert first.emotions.happy == pytest.approx((0.8 * 2 + 0.1) / 3, abs=1e-6)
    assert first.dominant_emotion == "happy" and second.dominant_emotion == "sad"
    assert first.peaks["sad"].time_ms == 200 and first.peaks["happy"].time_ms == 0  # the first of equal peaks
    assert [entry.time_ms for entry in first.timeline] == [0, 200, 400]
    overall = video_summary(summary)
    assert overall.people == 2 and summary.frames_analysed == 3
    # the smoothed emotions decide: (happy + sad) / 2 is still happy
    assert overall.dominant_share.happy == pytest.approx(3 / 5) and overall.dominant_share.sad == pytest.approx(2 / 5)


def test_short_tracks_are_left_out_and_timelines_only_kept_when_asked() -> None:
    summary = ClipSummary(CLASSES, min_track_frames=2, keep_timeline=False)
    add(summary, 0, [sighting(1, HAPPY), sighting(2, SAD)])
    add(summary, 200, [sighting(1, HAPPY)])
    (only,) = track_results(summary)
    assert only.track_id == 1 and only.timeline is None
    assert video_summary(summary).people == 1


def test_a_clip_without_faces_has_an_empty_summary() -> None:
    summary = ClipSummary(CLASSES, min_track_frames=1, keep_timeline=True)
    add(summary, 0, [])
    assert track_results(summary) == [] and video_summary(summary).people == 0
    assert sum(video_summary(summary).emotions.model_dump().values()) == 0
