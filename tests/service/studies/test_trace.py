"""A viewer's recording reduced to a per-second trace: whose face, which seconds, who is excluded."""

from __future__ import annotations

import pytest

from service.schemas import (
    Box,
    EmotionScores,
    HeadPose,
    Landmarks,
    Point,
    TimelineEntry,
    TrackResult,
    VideoInfo,
    VideoResponse,
    VideoSummary,
)
from service.studies.trace import AttentionLimits, Trace, exclusion, main_face, viewer_trace

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SCORES = EmotionScores(**dict.fromkeys(CLASSES, 1 / 7))
LIMITS = AttentionLimits(max_yaw_deg=30, max_pitch_deg=30)


def entry(time_ms: float, x: float, yaw: float = 0.0) -> TimelineEntry:
    point = Point(x=x, y=50)
    return TimelineEntry(
        time_ms=time_ms,
        box=Box(x=x, y=40, width=40, height=40),
        landmarks=Landmarks(left_eye=point, right_eye=point, nose=point, mouth_left=point, mouth_right=point),
        head_pose=HeadPose(yaw=yaw, pitch=0, roll=0),
        detection_score=0.9,
        emotions=SCORES,
        dominant_emotion="neutral",
        raw_emotions=SCORES,
    )


def track(track_id: int, times_ms: list[float], x: float) -> TrackResult:
    timeline = [entry(t, x) for t in times_ms]
    return TrackResult(
        track_id=track_id,
        first_ms=times_ms[0],
        last_ms=times_ms[-1],
        frames=len(times_ms),
        emotions=SCORES,
        dominant_emotion="neutral",
        peaks={},
        timeline=timeline,
    )


def test_the_viewer_is_the_central_face_and_comes_back_after_leaving() -> None:
    viewer_before = track(1, [0, 200, 400, 600, 800, 1000], x=140)
    passer_by = track(2, [0, 200, 400, 600, 800, 1000, 1200], x=5)  # longer, but at the edge, and overlapping
    viewer_after = track(3, [3000, 3200, 3400], x=150)
    entries = main_face([viewer_before, passer_by, viewer_after], width=320, height=240)
    assert [e.time_ms for e in entries] == [0, 200, 400, 600, 800, 1000, 3000, 3200, 3400]


def test_attention_needs_the_face_turned_to_the_screen() -> None:
    assert LIMITS.attentive([entry(0, 100, yaw=10), entry(200, 100, yaw=-20)])
    assert not LIMITS.attentive([entry(0, 100, yaw=50), entry(200, 100, yaw=45)])
    assert not LIMITS.attentive([])


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
    answer = VideoResponse(
        request_id="r",
        models={},
        video=VideoInfo(filename=None, width=320, height=240, fps=25.0, duration_ms=3000, frames_analysed=15),
        tracks=[track(1, timeline, x=140)],
        summary=VideoSummary(emotions=SCORES, dominant_share=SCORES, people=1),
    )
    analysed_ms = [t * 200.0 for t in range(15)]  # 5 frames a second, with a face or not
    trace = viewer_trace(answer, 0.0, 3, CLASSES, LIMITS, analysed_ms)
    assert [p is not None for p in trace.probabilities] == [True, False, True]
    assert trace.attentive == [True, False, True]
