import itertools
import json
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.api.app import create_app
from service.config import Settings
from tests.helpers.clips import PEOPLE, clip_frames

JPEG_FRAMES = {
    name: [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in clip_frames(name)]
    for name in PEOPLE
}


def answers_one_by_one(ws, frames: list[bytes]) -> list[dict]:
    out = []
    for frame in frames:
        ws.send_bytes(frame)
        out.append(json.loads(ws.receive_text()))
    return out


def closed_with(ws) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    return closed.value.code


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_each_person_keeps_one_track_id_across_a_real_clip(client: TestClient, name: str) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        answers = answers_one_by_one(ws, JPEG_FRAMES[name][::2])
    assert [a["frame"] for a in answers] == list(range(len(answers)))
    assert all(len(a["faces"]) == PEOPLE[name] for a in answers)
    assert {f["track_id"] for a in answers for f in a["faces"]} == set(range(1, PEOPLE[name] + 1))
    for answer in answers:
        assert answer["dropped"] == 0 and answer["latency_ms"] > 0
        for face in answer["faces"]:
            assert sum(face["emotions"].values()) == pytest.approx(1, abs=1e-4)
            assert sum(face["raw_emotions"].values()) == pytest.approx(1, abs=1e-4)


def test_smoothed_answers_change_class_less_often_than_raw_ones(full_detection_client: TestClient) -> None:
    def changes(labels: list[str]) -> int:
        return sum(a != b for a, b in itertools.pairwise(labels))

    with full_detection_client.websocket_connect("/v1/stream", subprotocols=["emotion-stream"]) as ws:
        assert ws.accepted_subprotocol == "emotion-stream"
        ws.send_text(json.dumps({"smoothing": 2.0}))
        answers = answers_one_by_one(ws, JPEG_FRAMES["two-people-head-pose.webm"])
    raw = smoothed = 0
    for track_id in (1, 2):
        faces = [f for a in answers for f in a["faces"] if f["track_id"] == track_id]
        raw += changes([max(f["raw_emotions"], key=f["raw_emotions"].get) for f in faces])
        smoothed += changes([f["dominant_emotion"] for f in faces])
    assert raw >= 3 and smoothed < raw / 2


def test_a_flood_is_answered_with_the_newest_frames_and_the_rest_dropped(client: TestClient) -> None:
    frames = JPEG_FRAMES["two-people-head-pose.webm"]
    with client.websocket_connect("/v1/stream") as ws:
        for frame in frames:  # all at once, without waiting for answers
            ws.send_bytes(frame)
        answers = [json.loads(ws.receive_text())]
        while answers[-1]["frame"] != len(frames) - 1:
            answers.append(json.loads(ws.receive_text()))
    assert len(answers) < len(frames) / 2  # not a queue: most frames were replaced before analysis
    assert answers[-1]["dropped"] == len(frames) - len(answers)
    assert all(a["latency_ms"] < 5000 for a in answers)


def test_a_bad_frame_gets_an_error_and_the_stream_goes_on(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(b"definitely not an image")
        assert json.loads(ws.receive_text()) == {
            "frame": 0,
            "error": {"code": "unsupported_type", "message": "not an image; send JPEG, PNG, WebP, BMP, TIFF or GIF"},
        }
        (answer,) = answers_one_by_one(ws, JPEG_FRAMES["asl-please.mp4"][:1])
        assert answer["frame"] == 1 and len(answer["faces"]) == 1


@pytest.mark.parametrize(
    "first", ["not json", "[1, 2]", '{"smoothing": -1}', '{"max_fps": 0}', '{"colour": "blue"}', '{"smoothing": true}']
)
def test_a_bad_configuration_closes_with_policy_violation(client: TestClient, first: str) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(first)
        assert closed_with(ws) == 1008


def test_max_fps_limits_the_analysed_rate(client: TestClient) -> None:
    frames = JPEG_FRAMES["asl-please.mp4"]
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"max_fps": 2}))
        started = time.monotonic()
        answers = []
        for frame in frames[:30]:
            ws.send_bytes(frame)
            time.sleep(0.05)  # 20 frames per second for 1.5 s
        while not answers or answers[-1]["frame"] != 29:
            answers.append(json.loads(ws.receive_text()))
        elapsed = time.monotonic() - started
    assert len(answers) <= elapsed * 2 + 1


@pytest.fixture(scope="module")
def strict() -> Iterator[TestClient]:
    """Keys required, one stream at a time, 200 kB frames, 2 s idle timeout."""
    settings = Settings(
        api_keys="sekret-1", stream_max_streams=1, stream_max_frame_bytes=200_000, stream_idle_timeout_s=2
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_key_is_accepted_as_a_subprotocol_or_in_the_first_message(strict: TestClient) -> None:
    frame = JPEG_FRAMES["asl-thanks.mkv"][:1]
    with strict.websocket_connect("/v1/stream", subprotocols=["emotion-stream", "key.sekret-1"]) as ws:
        assert ws.accepted_subprotocol == "emotion-stream"  # the key is never echoed
        assert len(answers_one_by_one(ws, frame)[0]["faces"]) == 1
    with strict.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"api_key": "sekret-1"}))
        assert len(answers_one_by_one(ws, frame)[0]["faces"]) == 1


@pytest.mark.parametrize("protocols", [[], ["key.wrong"]])
def test_a_missing_or_wrong_key_closes_with_1008(strict: TestClient, protocols: list[str]) -> None:
    with strict.websocket_connect("/v1/stream", subprotocols=protocols) as ws:
        ws.send_bytes(JPEG_FRAMES["asl-thanks.mkv"][0])
        assert closed_with(ws) == 1008


def test_a_frame_over_the_size_limit_closes_with_1009(strict: TestClient) -> None:
    big = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))[1]
    with strict.websocket_connect("/v1/stream", subprotocols=["key.sekret-1"]) as ws:
        ws.send_bytes(big.tobytes())
        assert closed_with(ws) == 1009


def test_past_the_stream_limit_a_stream_is_refused_with_1013(strict: TestClient) -> None:
    with strict.websocket_connect("/v1/stream", subprotocols=["key.sekret-1"]) as first:
        answers_one_by_one(first, JPEG_FRAMES["asl-thanks.mkv"][:1])
        with strict.websocket_connect("/v1/stream", subprotocols=["key.sekret-1"]) as second:
            assert closed_with(second) == 1013
    with strict.websocket_connect("/v1/stream", subprotocols=["key.sekret-1"]) as again:  # the slot came back
        assert len(answers_one_by_one(again, JPEG_FRAMES["asl-thanks.mkv"][:1])) == 1


def test_an_idle_stream_is_closed(strict: TestClient) -> None:
    with strict.websocket_connect("/v1/stream", subprotocols=["key.sekret-1"]) as ws:
        assert closed_with(ws) == 1000


def test_shutdown_answers_the_frame_in_flight_then_closes_with_1001(client: TestClient) -> None:
    runtime = client.app.state.runtime
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(JPEG_FRAMES["two-people-head-pose.webm"][0])
        time.sleep(0.05)  # the frame is being analysed
        client.portal.call(runtime.streams.close_all, 10.0)
        assert len(json.loads(ws.receive_text())["faces"]) == 2
        assert closed_with(ws) == 1001
    runtime.streams.accepting = True  # this app serves the other tests


def test_a_model_failure_closes_with_1011_and_leaves_nothing_behind(client: TestClient) -> None:
    runtime = client.app.state.runtime

    async def failing(crops: np.ndarray) -> np.ndarray:
        raise RuntimeError("the model failed")

    batcher = runtime.emotion().batcher
    real = batcher.classify
    batcher.classify = failing  # a broken model cannot be made to fail for real
    try:
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_bytes(JPEG_FRAMES["asl-thanks.mkv"][0])
            assert closed_with(ws) == 1011
    finally:
        batcher.classify = real
    assert not runtime.streams.open


def test_a_client_leaving_mid_frame_leaves_nothing_behind(client: TestClient) -> None:
    runtime = client.app.state.runtime
    for _ in range(3):
        with client.websocket_connect("/v1/stream") as ws:
            for frame in JPEG_FRAMES["two-people-head-pose.webm"][:10]:
                ws.send_bytes(frame)
    deadline = time.monotonic() + 10
    while runtime.streams.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runtime.streams.open
    metrics = client.get("/metrics").text
    assert "emotion_streams_open 0.0" in metrics
    for outcome in ("received", "analysed", "dropped", "rejected"):
        assert f'emotion_stream_frames_total{{outcome="{outcome}"}}' in metrics
    assert "emotion_stream_frame_latency_seconds_bucket" in metrics
