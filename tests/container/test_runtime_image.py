"""The runtime image, built from the real Dockerfile, run as users run it: its non-root user, a
read-only root filesystem with only a tmpfs at /tmp (docs/operations.md), no capabilities; real
photos, clips and stream frames; SIGTERM under load."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.helpers.clips import clip_bytes
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import free_port
from tests.helpers.load import Load
from tests.helpers.podman import Podman, wait_ready
from training.scenes import place_faces

PHOTO = jpeg(place_faces(fer_faces("happy", 1) + fer_faces("surprise", 1), 480, 640, 170, seed=70).image)
# What the docs promise is enough: no writable path but a tmpfs at /tmp, nothing the process may gain.
LOCKED_DOWN = (
    "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=512m",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
)  # fmt: skip


@pytest.fixture(scope="module")
def served(podman: Podman, runtime_image: str) -> Iterator[str]:
    port = free_port()
    with podman.running(runtime_image, *LOCKED_DOWN, "-p", f"127.0.0.1:{port}:8000", name="emotion-ci-runtime"):
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        yield base


def test_the_image_holds_the_service_and_nothing_else(podman: Podman, runtime_image: str) -> None:
    probe = """
        id -u
        for tool in gcc cc g++ make git; do command -v $tool; done
        python -c 'import torch' 2>/dev/null && echo torch
        python -c 'import ray' 2>/dev/null && echo ray
        packages=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        ls -d /app/tests /app/training /src "$packages/tests" "$packages/training" 2>/dev/null
        find / -xdev \\( -name .git -o -name '*.jpg' -o -name '*.mp4' -o -name '*.webm' -o -iname 'fer2013*' \\) \\
            -not -path '/proc/*' -not -path '/usr/share/*' 2>/dev/null
        true
    """
    found = podman("run", "--rm", "--entrypoint", "sh", runtime_image, "-c", probe).stdout.split()
    assert found[0] == "10001"  # the image's own unprivileged user
    assert found[1:] == [], f"the image holds {found[1:]}"
    size = podman.size_mb(runtime_image)
    print(f"runtime image: {size:.0f} MB")
    assert size <= 600


def test_a_read_only_container_answers_photos_clips_streams_and_metrics(served: str) -> None:
    assert httpx.get(f"{served}/readyz").json() == {"status": "ok"}
    photo = httpx.post(f"{served}/v1/predict", files={"files": ("p.jpg", PHOTO)}, timeout=60)
    assert photo.status_code == 200
    assert sorted(f["dominant_emotion"] for f in photo.json()["images"][0]["faces"]) == ["happy", "surprise"]
    clip = httpx.post(
        f"{served}/v1/video", files={"file": ("c.webm", clip_bytes("two-people-head-pose.webm"))}, timeout=120
    )
    assert clip.status_code == 200 and clip.json()["summary"]["people"] == 2
    with connect(f"ws://{served.removeprefix('http://')}/v1/stream") as stream:
        stream.send(PHOTO)
        answer = json.loads(stream.recv(timeout=30))
    assert len(answer["faces"]) == 2
    # A job writes its upload and its row under /tmp: the only writable place.
    job = httpx.post(f"{served}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()
    deadline = time.monotonic() + 60
    while httpx.get(f"{served}/v1/jobs/{job['job_id']}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    metrics = httpx.get(f"{served}/metrics").text
    for counted in ("emotion_http_requests_total", "emotion_video_frames_total", "emotion_stream_frames_total"):
        assert counted in metrics


def test_sigterm_under_load_drains_and_exits_0(podman: Podman, runtime_image: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with podman.running(runtime_image, *LOCKED_DOWN, "-p", f"127.0.0.1:{port}:8000", name="emotion-ci-drain") as name:
        wait_ready(base)
        # Connection errors once the container has gone are expected; every answer must be a 200.
        with Load(f"{base}/v1/predict", PHOTO, clients=4).running() as load:
            time.sleep(3)
            started = time.monotonic()
            podman("stop", "-t", "40", name, timeout=60)  # SIGTERM, then SIGKILL after the grace period
            stopped_in = time.monotonic() - started
        assert podman.exit_code(name) == 0
    answered = load.answered()
    after = sum(o.done >= started for o in answered)
    print(f"stopped in {stopped_in:.1f} s; {after} requests answered after SIGTERM")
    assert stopped_in < 40
    assert len(answered) > after > 0  # answered before SIGTERM, and served on while draining
    assert {o.status for o in answered} == {200}, f"answers under load: {sorted({o.status for o in answered})}"
