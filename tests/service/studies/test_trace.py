"""A viewer's recording reduced to a per-second trace: whose face, which seconds, who is excluded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from service.inference.faces import Faces
from service.studies.face_actions import SecondActions
from service.studies.trace import AttentionLimits, Trace, exclusion, main_face, second_summary, trace_of, viewer_trace
from service.tracking.summary import TrackTotals

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
LIMITS = AttentionLimits(max_yaw_deg=30, max_pitch_deg=30, max_gaze_yaw_deg=25)
# The detector's landmarks of a face 40 px wide looking at the camera, and of one turned well away.
FRONTAL = np.array([[12.5, 13.5], [27.5, 13.5], [20.0, 22.0], [14.0, 29.0], [26.0, 29.0]])
TURNED = np.array([[4.0, 13.5], [13.0, 13.5], [2.0, 22.0], [5.0, 29.0], [12.0, 29.0]])


def face(x: float, landmarks: np.ndarray = FRONTAL) -> Faces:
    box = np.array([x, 40, x + 40, 80])
    probabilities = np.full((1, len(CLASSES)), 1 / len(CLASSES))
    detected = Faces.detected(box, landmarks + box[:2], [0.9])
    return detected.with_columns(probabilities=probabilities, track_ids=np.array([1]), smoothed=probabilities)


def track(times_ms: list[float], x: float) -> TrackTotals:
    totals = TrackTotals(len(CLASSES), first_ms=times_ms[0], last_ms=times_ms[-1], frames=len(times_ms))
    totals.timeline = [(t, face(x)) for t in times_ms]
    return totals


def test_the_viewer_is_the_central_face_and_comes_back_after_leaving() -> None:
    viewer_before = track([0, 200, 400, 600, 800, 1000], x=140)
    passer_by = track([0, 200, 400, 600, 800, 1000, 1200], x=5)  # longer, but at the edge, and overlapping
    viewer_after = track([3000, 3200, 3400], x=150)
    times_ms, faces = main_face([viewer_before, passer_by, viewer_after], width=320, height=240)
    assert times_ms.tolist() == [0, 200, 400, 600, 800, 1000, 3000, 3200, 3400]
    assert faces.boxes[:, 0].tolist() == [140] * 6 + [150] * 3


def test_attention_needs_the_face_and_the_eyes_turned_to_the_screen() -> None:
    frontal = second_summary(Faces.concatenate([face(100), face(100)]), analysed=2)
    turned = second_summary(Faces.concatenate([face(100, TURNED), face(100, TURNED)]), analysed=2)
    assert LIMITS.attentive(frontal)
    assert not LIMITS.attentive(turned)
    assert not LIMITS.attentive(second_summary(Faces.empty(), analysed=2))
    looking_at = SecondActions(smile=0.1, expressiveness=0.1, blinks=0, gaze_yaw_deg=10)
    looking_aside = dataclasses.replace(looking_at, gaze_yaw_deg=40)  # the head to the screen, the eyes away
    assert LIMITS.attentive(dataclasses.replace(frontal, actions=looking_at))
    assert not LIMITS.attentive(dataclasses.replace(frontal, actions=looking_aside))


def test_exclusions_say_why() -> None:
    present = Trace([[0.1] * 7] * 8 + [None] * 2, [True] * 8 + [False] * 2)
    assert exclusion(present, recording_s=10, offset_s=0, duration_s=10, min_presence=0.5) is None
    assert "ends 3.0 s before" in exclusion(present, recording_s=9, offset_s=2, duration_s=10, min_presence=0.5)
    absent = Trace([[0.1] * 7] * 3 + [None] * 7, [True] * 3 + [False] * 7)
    assert exclusion(absent, recording_s=10, offset_s=0, duration_s=10, min_presence=0.5) == (
        "face found in 30% of the stimulus (minimum 50%)"
    )


def test_a_second_counts_when_the_face_is_in_half_its_frames() -> None:
    """At 5 frames a second, a face found in 3 frames of a second counts, in 1 frame (turning away) does not."""
    timeline = [0, 200, 400, 1000, 2000, 2200, 2400, 2600, 2800]  # 3 frames, 1, then 5
    analysed_ms = [t * 200.0 for t in range(15)]  # 5 frames a second, with a face or not
    trace = trace_of(viewer_trace([track(timeline, x=140)], (320, 240), 0.0, 3, analysed_ms), LIMITS)
    assert [p is not None for p in trace.probabilities] == [True, False, True]
    assert trace.attentive == [True, False, True]
    assert trace.probabilities[0] == pytest.approx([1 / 7] * 7, abs=1e-5)
