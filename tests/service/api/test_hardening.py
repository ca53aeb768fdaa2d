"""One request must never take the service down: each finding of the hardening review, replayed
against a real service process, which must answer it correctly and go on serving."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.inference.batcher import MicroBatcher
from service.ops.metrics import Metrics
from tests.helpers.clips import clip_bytes, ffmpeg
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import LiveService, running_service
from training.scenes import place_faces

KEY = "hardening-key"
FAST = {"emotion_models": "emotion-fast", "default_emotion_model": "emotion-fast"}
FACE = jpeg(place_faces(fer_faces("happy", 1), 240, 320, 120, seed=42).image)


def forged_chunk_offset(data: bytes) -> bytes:
    """The MP4 with its first `stco` chunk offset set to 0x90000000, past 2**31."""
    forged = bytearray(data)
    at = forged.find(b"stco") + 12  # box type, version and flags, entry count
    forged[at : at + 4] = (0x90000000).to_bytes(4, "big")
    return bytes(forged)


def still_serving(service: LiveService, headers: dict | None = None) -> None:
    assert service.process.poll() is None, "the service process died"
    assert httpx.get(f"{service.base}/readyz").status_code == 200
    files = [("files", ("face.jpg", FACE, "image/jpeg"))]
    answer = httpx.post(f"{service.base}/v1/predict", files=files, headers=headers, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["images"][0]["faces"]) == 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


@pytest.fixture(scope="module")
def keyed() -> Iterator[LiveService]:
    """API keys on, with short limits on what a client may hold."""
    with running_service(
        api_keys=KEY,
        stream_max_streams=4,
        stream_auth_timeout_s=1,
        request_body_timeout_s=2,
        header_timeout_s=1,
        max_buffered_body_bytes=24 * 2**20,
        **FAST,
    ) as service:
        yield service


@pytest.fixture(scope="module")
def hurried() -> Iterator[LiveService]:
    """Keys off, one request at a time, clips cut at half a second."""
    with running_service(video_timeout_s=0.5, max_concurrent_requests=1, **FAST) as service:
        yield service


@pytest.fixture(scope="module")
def endless_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """30,000 frames all stamped 0 ms: every frame after the first is skipped, and skipping takes seconds."""
    folder = tmp_path_factory.mktemp("endless")
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=black:s=320x240:r=100",
        "-frames:v",
        "30000",
        "-c:v",
        "mjpeg",
        "-q:v",
        "31",
        str(folder / "plain.mkv"),
    )
    ffmpeg("-i", str(folder / "plain.mkv"), "-c", "copy", "-bsf:v", "setts=ts=0", str(folder / "endless.mkv"))
    return (folder / "endless.mkv").read_bytes()


def test_a_forged_mp4_index_is_refused_and_the_process_lives(keyed: LiveService) -> None:
    headers = {"X-API-Key": KEY}
    files = {"file": ("clip.mp4", forged_chunk_offset(clip_bytes("asl-please.mp4")))}
    answer = httpx.post(f"{keyed.base}/v1/video", files=files, headers=headers, timeout=60)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "undecodable"
    still_serving(keyed, headers)
    real = httpx.post(
        f"{keyed.base}/v1/video", files={"file": ("a.mp4", clip_bytes("asl-please.mp4"))}, headers=headers, timeout=60
    )
    assert real.status_code == 200 and real.json()["summary"]["people"] == 1


def test_a_cancelled_waiter_leaves_the_batcher_serving() -> None:
    release = threading.Event()

    def slow_model(crops: np.ndarray) -> np.ndarray:
        release.wait(5)
        return np.full((len(crops), 7), 1 / 7, np.float32)

    batcher = MicroBatcher(slow_model, 8, 0.001, Metrics())
    batcher.start()

    async def scenario() -> np.ndarray:
        crops = np.zeros((2, 48, 48), np.uint8)
        first = asyncio.ensure_future(batcher.classify(crops))  # taken into a batch, then given up
        queued = asyncio.ensure_future(batcher.classify(crops))  # given up before its batch
        await asyncio.sleep(0.1)
        first.cancel()
        queued.cancel()
        release.set()
        return await asyncio.wait_for(batcher.classify(crops), 5)

    try:
        assert asyncio.run(scenario()).shape == (2, 7)
        assert batcher.alive
    finally:
        batcher.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_batcher_that_dies_fails_its_batch_and_is_restarted() -> None:
    class Fatal(BaseException):
        pass

    calls = []

    def model(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        if len(calls) == 1:
            raise Fatal
        return np.full((len(crops), 7), 1 / 7, np.float32)

    batcher = MicroBatcher(model, 8, 0.001, Metrics())
    batcher.start()
    crops = np.zeros((1, 48, 48), np.uint8)
    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(batcher.classify(crops))
    batcher.thread.join(5)
    assert not batcher.alive  # what /readyz reports as 503
    try:
        assert asyncio.run(batcher.classify(crops)).shape == (1, 7)
        assert batcher.alive
    finally:
        batcher.stop()


def test_clients_leaving_mid_clip_leave_the_service_whole(keyed: LiveService) -> None:
    headers = {"X-API-Key": KEY, "Accept": "application/x-ndjson"}
    files = {"file": ("two.webm", clip_bytes("two-people-head-pose.webm"))}
    for _ in range(4):
        with httpx.stream("POST", f"{keyed.base}/v1/video", files=files, headers=headers, timeout=60) as answer:
            next(answer.iter_lines())  # one frame, then hang up
    still_serving(keyed, {"X-API-Key": KEY})


def ws_url(service: LiveService) -> str:
    return service.base.replace("http://", "ws://") + "/v1/stream"


def close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return closed.value.rcvd.code


@pytest.mark.parametrize(
    "first", ["[" * 100_000, json.dumps({"api_key": "\ud800"}), '{"api_key": 7}'], ids=["nested", "surrogate", "number"]
)
def test_unreadable_first_messages_close_1008_and_free_their_slot(keyed: LiveService, first: str) -> None:
    for _ in range(6):  # more than the four slots
        with connect(ws_url(keyed), max_size=None) as ws:
            ws.send(first)
            assert close_code(ws) == 1008
    with connect(ws_url(keyed), subprotocols=["emotion-stream", f"key.{KEY}"]) as ws:
        ws.send(FACE)
        assert len(json.loads(ws.recv(timeout=30))["faces"]) == 1


def test_a_stream_that_sends_no_key_is_closed_within_seconds(keyed: LiveService) -> None:
    started = time.monotonic()
    with connect(ws_url(keyed)) as ws:
        assert close_code(ws) == 1008
    assert time.monotonic() - started < 3  # the key timeout (1 s), not the idle timeout (30 s)


def test_skipped_frames_stop_at_the_deadline_in_both_forms(hurried: LiveService, endless_clip: bytes) -> None:
    files = {"file": ("endless.mkv", endless_clip)}
    started = time.monotonic()
    answer = httpx.post(f"{hurried.base}/v1/video", files=files, timeout=30)
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 3
    time.sleep(0.3)
    before = cpu_seconds(hurried.process.pid)
    time.sleep(1.5)
    assert cpu_seconds(hurried.process.pid) - before < 0.5  # no decoding left running (it would take ~2 s)

    with httpx.stream(
        "POST", f"{hurried.base}/v1/video", files=files, timeout=30, headers={"Accept": "application/x-ndjson"}
    ) as streamed:
        lines = [json.loads(line) for line in streamed.iter_lines()]
    assert lines[-1]["error"]["code"] == "timeout"
    assert time.monotonic() - started < 8


def test_a_client_gone_mid_clip_stops_the_decoding(keyed: LiveService, endless_clip: bytes) -> None:
    files = {"file": ("endless.mkv", endless_clip)}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
        httpx.post(
            f"{keyed.base}/v1/video", files=files, headers={"X-API-Key": KEY}, timeout=httpx.Timeout(30, read=0.5)
        )
    time.sleep(0.3)
    before = cpu_seconds(keyed.process.pid)
    time.sleep(1.5)
    assert cpu_seconds(keyed.process.pid) - before < 0.5  # skipping the rest would take ~2 s of CPU
    still_serving(keyed, {"X-API-Key": KEY})


def test_ndjson_over_capacity_is_a_503_before_any_byte(hurried: LiveService, endless_clip: bytes) -> None:
    files = {"file": ("endless.mkv", endless_clip)}
    headers = {"Accept": "application/x-ndjson"}
    with httpx.stream("POST", f"{hurried.base}/v1/video", files=files, headers=headers, timeout=30) as first:
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: a dropped iterator would close the response
        next(lines)  # its first frame; its slot is held until its timeout
        small = {"file": ("a.mp4", clip_bytes("asl-please.mp4"))}
        second = httpx.post(f"{hurried.base}/v1/video", files=small, headers=headers, timeout=30)
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert second.json()["error"]["code"] == "overloaded"


PART_HEAD = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'


def raw_request(service: LiveService, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = service.base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(head + body)
    return conn


def status_of(conn: socket.socket) -> int:
    reply = conn.recv(65536)
    return int(reply.split(b" ", 2)[1]) if reply else 0


def upload_head(path: str, length: int, key: str | None = KEY) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: x",
        f"Content-Length: {length}",
        "Content-Type: multipart/form-data; boundary=b",
    ]
    if key:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_missing_key_is_refused_before_the_body(keyed: LiveService) -> None:
    with raw_request(keyed, upload_head("/v1/video", 80 * 2**20, key=None), PART_HEAD) as conn:
        assert status_of(conn) == 401  # answered with 80 MB still unsent


def test_stalled_bodies_time_out_and_the_body_budget_refuses_the_rest(keyed: LiveService) -> None:
    part = PART_HEAD + b"x" * (14 * 2**20)
    with raw_request(keyed, upload_head("/v1/video", 50 * 2**20), part) as stalled:
        time.sleep(0.5)  # 14 MB of the 24 MB budget held by a stalled upload
        with raw_request(keyed, upload_head("/v1/video", 50 * 2**20), part) as second:
            assert status_of(second) == 503
        assert status_of(stalled) == 408  # the body timeout (2 s) ends the stalled one
    still_serving(keyed, {"X-API-Key": KEY})


def test_the_pixels_of_all_images_together_are_bounded(keyed: LiveService) -> None:
    big = cv2.imencode(".png", np.zeros((3000, 3000), np.uint8))[1].tobytes()  # 9 Mpx each, under the image limit
    files = [("files", (f"{i}.png", big, "image/png")) for i in range(10)]
    answer = httpx.post(f"{keyed.base}/v1/predict", files=files, headers={"X-API-Key": KEY}, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_many_pixels"


def test_half_a_header_is_not_held(keyed: LiveService) -> None:
    with raw_request(keyed, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") as conn:
        started = time.monotonic()
        assert conn.recv(1024) == b""  # closed by the service
        assert time.monotonic() - started < 3


def test_client_chosen_methods_never_become_labels_or_log_lines(keyed: LiveService) -> None:
    rng = np.random.default_rng(6)
    methods = ["".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 40)) for _ in range(30)]
    with httpx.Client() as client:
        for method in methods:
            assert client.request(method, f"{keyed.base}/healthz").status_code == 405
    exposition = httpx.get(f"{keyed.base}/metrics").text
    assert 'method="other"' in exposition
    assert not any(m in exposition or m in keyed.log() for m in methods)


def test_health_routes_answer_head(keyed: LiveService) -> None:
    for path in ("/healthz", "/readyz"):
        answer = httpx.head(f"{keyed.base}{path}")
        assert answer.status_code == 200 and answer.content == b""


def test_a_truncated_clip_is_marked_partial(keyed: LiveService) -> None:
    data = clip_bytes("asl-thanks.mkv")
    files = {"file": ("cut.mkv", data[: len(data) // 2])}
    video = httpx.post(f"{keyed.base}/v1/video", files=files, headers={"X-API-Key": KEY}, timeout=60).json()["video"]
    assert video["partial"] is True and "ms" in video["partial_reason"]
    whole = {"file": ("whole.mkv", data)}
    video = httpx.post(f"{keyed.base}/v1/video", files=whole, headers={"X-API-Key": KEY}, timeout=60).json()["video"]
    assert video["partial"] is False and video["partial_reason"] is None


def test_file_names_are_echoed_sanitised(keyed: LiveService) -> None:
    name = b"../../etc/\x01pass\x7fwd<b>" + b"y" * 400 + b".jpg"  # raw: httpx would percent-encode it
    body = b'--b\r\nContent-Disposition: form-data; name="files"; filename="' + name + b'"\r\n\r\n'
    body += FACE + b"\r\n--b--\r\n"
    headers = {"X-API-Key": KEY, "Content-Type": "multipart/form-data; boundary=b"}
    echoed = httpx.post(f"{keyed.base}/v1/predict", content=body, headers=headers).json()
    filename = echoed["images"][0]["filename"]
    assert filename.startswith("passwd<b>yyy") and len(filename) == 255
    assert "/" not in filename and not any(ord(c) < 32 or c == "\x7f" for c in filename)
