"""A real Ray cluster and a real archive: FER-2013 faces in scenes, frames of the shared clips, broken files."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.clips import clip_frames
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces

# The test cluster requires a token, as a shared cluster should. Ray reads these when it is imported,
# so they are set before any test module imports it; the jobs the tests start inherit them.
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))

BROKEN = {"truncated.jpg": "undecodable", "notes.txt": "unsupported_type", "empty.png": "empty"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited at start-up"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on a loopback port; yields the environment that points clients at it."""
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process)
        yield {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory, object_store: dict[str, str]) -> Iterator[str]:
    """A 2-CPU Ray cluster on loopback, started for the tests and stopped after them.

    Its nodes reach the object store as a cluster's pods would: through their own environment.
    """
    port = free_port()
    ray = Path(sys.executable).parent / "ray"
    temp = tmp_path_factory.mktemp("ray")
    command = [str(ray), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    command += ["--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **object_store},
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the head and every worker it started
        process.wait(timeout=60)


def write_archive(folder: Path, scenes: int) -> dict[str, int]:
    """Scenes of one or two real FER-2013 faces, two frames of the shared clips, and broken files.

    Returns the number of faces placed in each file (None for the broken ones).
    """
    folder.mkdir(parents=True, exist_ok=True)
    emotions = ["happy", "surprise", "sad", "angry", "neutral"]
    faces = {e: fer_faces(e, scenes) for e in emotions}
    expected: dict[str, int | None] = {}
    for i in range(scenes):
        people = 2 if i % 3 == 0 else 1
        chosen = [faces[emotions[(i + k) % len(emotions)]][i] for k in range(people)]
        image = place_faces(chosen, 320, 480, 130, seed=i).image
        name = f"scenes/scene-{i:03d}.jpg"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(jpeg(image))
        expected[name] = people
    for clip, people in (("two-people-head-pose.webm", 2), ("asl-thanks.mkv", 1)):
        name = f"photos/{clip.split('.')[0]}.jpg"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(jpeg(clip_frames(clip)[10]))
        expected[name] = people
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 127, np.uint8))
    expected["blank.png"] = 0
    (folder / "truncated.jpg").write_bytes((folder / "scenes/scene-001.jpg").read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    expected.update(dict.fromkeys(BROKEN))
    return expected


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int | None]]:
    folder = tmp_path_factory.mktemp("archive")
    return folder, write_archive(folder, 24)


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """emotion-batch as a user runs it, in its own process."""
    command = [str(Path(sys.executable).parent / "emotion-batch"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
