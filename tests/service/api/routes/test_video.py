import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from tests.helpers.clips import PEOPLE, clip_bytes, clip_frames, write_clip
from tests.helpers.faces import fer_faces, jpeg

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def post_clip(client: TestClient, name: str, data: bytes, **params: object) -> dict:
    response = client.post("/v1/video", params=params, files={"file": (name, data)})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def answers(client: TestClient) -> dict[str, dict]:
    return {name: post_clip(client, name, clip_bytes(name)) for name in PEOPLE}


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_each_real_clip_yields_its_people_with_a_track_over_every_frame(answers: dict, name: str) -> None:
    body = answers[name]
    assert body["summary"]["people"] == PEOPLE[name] == len(body["tracks"])
    video = body["video"]
    assert video["filename"] == name
    assert video["frames_analysed"] == pytest.approx(video["duration_ms"] / 200, abs=1.5)  # 5 fps by default
    for track in body["tracks"]:
        assert track["frames"] == video["frames_analysed"] == len(track["timeline"])  # never lost, never split
        assert sum(track["emotions"].values()) == pytest.approx(1, abs=1e-4)
        assert track["dominant_emotion"] == max(track["emotions"], key=track["emotions"].get)
        assert set(track["peaks"]) == set(CLASSES)
        times = [entry["time_ms"] for entry in track["timeline"]]
        assert times == sorted(times) and track["first_ms"] == times[0] and track["last_ms"] == times[-1]
        for entry in track["timeline"]:
            box = entry["box"]
            assert box["x"] >= 0 and box["x"] + box["width"] <= video["width"] + 0.5
            assert sum(entry["raw_emotions"].values()) == pytest.approx(1, abs=1e-4)
        peak = track["peaks"]["happy"]
        at_peak = next(e for e in track["timeline"] if e["time_ms"] == peak["time_ms"])
        assert at_peak["emotions"]["happy"] == peak["probability"]
    summary = body["summary"]
    assert sum(summary["emotions"].values()) == pytest.approx(1, abs=1e-4)
    assert sum(summary["dominant_share"].values()) == pytest.approx(1, abs=1e-4)


def test_two_people_side_by_side_keep_their_sides(answers: dict) -> None:
    tracks = answers["two-people-head-pose.webm"]["tracks"]
    centres = [[e["box"]["x"] + e["box"]["width"] / 2 for e in t["timeline"]] for t in tracks]
    left, right = sorted(centres, key=np.mean)
    assert max(left) < min(right)  # identities never swap across the frame


def test_smoothing_makes_the_dominant_emotion_steadier(full_detection_client: TestClient) -> None:
    def changes(labels: list[str]) -> int:
        return sum(a != b for a, b in itertools.pairwise(labels))

    client = full_detection_client
    body = post_clip(client, "clip.webm", clip_bytes("two-people-head-pose.webm"), fps=12)
    raw = smoothed = 0
    for track in body["tracks"]:
        raw += changes([max(e["raw_emotions"], key=e["raw_emotions"].get) for e in track["timeline"]])
        smoothed += changes([e["dominant_emotion"] for e in track["timeline"]])
    assert raw >= 3 and smoothed < raw / 2
    unsmoothed = post_clip(client, "clip.webm", clip_bytes("two-people-head-pose.webm"), fps=12, smoothing=0)
    for track in unsmoothed["tracks"]:
        assert all(e["emotions"] == e["raw_emotions"] for e in track["timeline"])


def test_a_cut_ends_tracks_even_where_the_next_face_stands(client: TestClient, tmp_path: Path) -> None:
    first = clip_frames("asl-thanks.mkv")  # 640x480 at 30 fps, 1.7 s
    second = [cv2.resize(f, (640, 480)) for f in clip_frames("one-person-head-pose.gif")]
    body = post_clip(client, "cut.mp4", write_clip(tmp_path / "cut.mp4", first + second, fps=30))
    tracks = body["tracks"]
    assert len(tracks) == 2
    cut_ms = len(first) * 1000 / 30
    assert tracks[0]["last_ms"] < cut_ms <= tracks[1]["first_ms"]


def test_a_clip_without_faces_has_no_people(client: TestClient, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (31, 31), 0) for _ in range(20)]
    body = post_clip(client, "empty.mp4", write_clip(tmp_path / "empty.mp4", frames, fps=10))
    assert body["tracks"] == [] and body["summary"]["people"] == 0
    assert body["video"]["frames_analysed"] == 10


def test_fer_faces_change_expression_in_a_clip_and_the_timeline_follows(client: TestClient, tmp_path: Path) -> None:
    """One real FER-2013 face per second, happy then surprise, placed in a still scene."""
    happy, surprise = fer_faces("happy", 1)[0], fer_faces("surprise", 1)[0]

    def scene(face: np.ndarray) -> np.ndarray:
        frame = np.full((360, 480, 3), 90, np.uint8)
        big = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
        frame[60:252, 144:336] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
        return frame

    frames = [scene(happy)] * 20 + [scene(surprise)] * 20  # 2 s each at 10 fps
    body = post_clip(client, "faces.mp4", write_clip(tmp_path / "faces.mp4", frames, fps=10), smoothing=0.3)
    (track,) = body["tracks"]
    timeline = track["timeline"]
    assert timeline[5]["dominant_emotion"] == "happy" and timeline[-1]["dominant_emotion"] == "surprise"
    assert track["peaks"]["surprise"]["time_ms"] >= 2000 and track["peaks"]["happy"]["time_ms"] < 2000


def test_ndjson_streams_a_line_per_frame_then_the_summaries(client: TestClient, answers: dict) -> None:
    name = "two-people-head-pose.webm"
    with client.stream(
        "POST", "/v1/video", files={"file": (name, clip_bytes(name))}, headers={"Accept": "application/x-ndjson"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    *frames, closing = lines
    whole = answers[name]
    assert len(frames) == whole["video"]["frames_analysed"]
    assert all(len(f["faces"]) == 2 and {x["track_id"] for x in f["faces"]} == {1, 2} for f in frames)
    assert closing["summary"] == whole["summary"]
    assert [t["frames"] for t in closing["tracks"]] == [t["frames"] for t in whole["tracks"]]
    assert all("timeline" not in t for t in closing["tracks"])


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty"),
        (b"%PDF-1.4 not a clip", 415, "unsupported_type"),
        (jpeg(np.full((64, 64, 3), 128, np.uint8)), 415, "image_not_video"),
        (clip_bytes("asl-please.mp4")[:1000], 400, "undecodable"),
        (clip_bytes("asl-please.mp4")[:3000], 400, "undecodable"),  # opens, but no frame decodes
    ],
)
def test_bad_clips_get_json_errors_and_the_service_keeps_serving(
    client: TestClient, data: bytes, status: int, code: str
) -> None:
    response = client.post("/v1/video", files={"file": ("clip.mp4", data)})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert client.get("/readyz").status_code == 200


def test_a_clip_sent_to_the_photo_endpoint_is_pointed_to_video(client: TestClient) -> None:
    response = client.post("/v1/predict", files={"files": ("clip.mp4", clip_bytes("asl-please.mp4"))})
    assert response.status_code == 415
    assert response.json()["error"] == {
        "code": "video_not_image",
        "message": "files[0]: this is a video: use /v1/video",
        "request_id": response.headers["x-request-id"],
    }


def test_query_parameters_are_validated(client: TestClient) -> None:
    for params in ({"fps": 0.1}, {"fps": "fast"}, {"smoothing": -1}):
        response = client.post("/v1/video", params=params, files={"file": ("c.mp4", clip_bytes("asl-please.mp4"))})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_request"


@pytest.fixture(scope="module")
def strict() -> Iterator[TestClient]:
    """An app with small video limits: 1 MB, 3 s, 480x270 frames, 10 analysed frames."""
    settings = Settings(
        video_max_bytes=1_000_000, video_max_duration_s=3, video_max_frame_pixels=480 * 270, video_max_frames=10
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_limits_give_413_with_their_own_codes(strict: TestClient, tmp_path: Path) -> None:
    short = write_clip(tmp_path / "short.mp4", clip_frames("two-people-head-pose.webm")[:30], fps=12)  # 2.5 s
    cases = [
        (clip_bytes("one-person-head-pose.gif"), {}, "request_too_large"),  # 1.9 MB: refused by the body limit
        (clip_bytes("two-people-head-pose.webm"), {}, "video_too_long"),  # 4.7 s
        (clip_bytes("asl-please.mp4"), {}, "too_many_pixels"),  # 640x480
        (short, {"fps": 12}, "too_many_frames"),  # 30 frames
    ]
    for data, params, code in cases:
        response = strict.post("/v1/video", params=params, files={"file": ("clip", data)})
        assert (response.status_code, response.json()["error"]["code"]) == (413, code)
    assert post_clip(strict, "short.mp4", short, fps=2)["video"]["frames_analysed"] == 5


def test_video_metrics_are_exported(client: TestClient, answers: dict) -> None:
    text = client.get("/metrics").text
    for name in ("emotion_video_clips_total", "emotion_video_frames_total", "emotion_video_tracks_per_clip_bucket"):
        assert name in text
    assert 'emotion_stage_duration_seconds_count{stage="video_decode"}' in text
