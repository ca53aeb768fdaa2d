"""The compose file run with podman-compose: both API instances (the image built here), PostgreSQL
and HAProxy (built on the same local Debian base, as their images cannot be pulled here), with the
file's own settings: read-only roots, tmpfs, shared job store and uploads volume. A rolling restart
through the balancer fails no request. Prometheus and Grafana cannot be pulled here: their
configuration is validated in tests/deploy."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from service.config import PROJECT_ROOT
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import free_port
from tests.helpers.load import Load
from tests.helpers.podman import Podman
from training.scenes import place_faces

IMAGES = PROJECT_ROOT / "tests" / "container" / "images"
NOT_HERE = ("prometheus", "grafana")  # images that cannot be pulled here
PROJECT = "emotion-ci"
PHOTO = jpeg(place_faces(fer_faces("happy", 1), 240, 320, 150, seed=4).image)


def derived_compose(folder: Path, port: int) -> Path:
    """docker-compose.yml as it is, but for what this machine cannot do: PostgreSQL and HAProxy from the
    local images, the balancer on a free loopback port, paths made absolute, no Prometheus or Grafana."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in NOT_HERE:
        services.pop(name)
    services["postgres"]["image"] = "localhost/emotion-postgres:ci"
    balancer = services["balancer"]
    balancer["image"] = "localhost/emotion-haproxy:ci"
    balancer["ports"] = [f"127.0.0.1:{port}:8000"]
    balancer["volumes"] = [volume.replace("./", f"{PROJECT_ROOT}/", 1) for volume in balancer["volumes"]]
    for name in ("api-1", "api-2"):  # one mapping in YAML (an anchor): the image this run built
        services[name].pop("build", None)
    path = folder / "compose.yml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return path


def served_by(base: str) -> set[str]:
    seen = set()
    for _ in range(8):
        try:
            answer = httpx.get(f"{base}/readyz", timeout=5)
        except httpx.TransportError:
            continue
        if answer.status_code == 200:
            seen.add(answer.headers["x-served-by"])
    return seen


def wait_for_both(base: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while served_by(base) != {"api-1", "api-2"}:
        assert time.monotonic() < deadline, "both instances not in the balancer"
        time.sleep(1)


@pytest.fixture(scope="module")
def stack(podman: Podman, runtime_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    for name in ("postgres", "haproxy"):
        podman.build_context(IMAGES / name, f"localhost/emotion-{name}:ci")
    podman("tag", runtime_image, "localhost/emotion-service:0.1.0")  # the compose file's image name
    port = free_port()
    compose = derived_compose(tmp_path_factory.mktemp("compose"), port)
    command = [
        str(Path(sys.executable).parent / "podman-compose"),
        "--podman-args", f"--runtime {podman.runtime}", "-p", PROJECT, "-f", str(compose),
    ]  # fmt: skip

    def compose_run(*args: str) -> None:
        subprocess.run([*command, *args], check=True, capture_output=True, timeout=300)

    try:
        compose_run("up", "-d")
        base = f"http://127.0.0.1:{port}"
        wait_for_both(base)
        yield base, compose_run
    finally:
        subprocess.run([*command, "down", "-t", "5"], capture_output=True, timeout=300)
        for volume in podman("volume", "ls", "-q").stdout.split():
            if volume.startswith((PROJECT, PROJECT.replace("-", ""))):
                podman("volume", "rm", "-f", volume, check=False)


def test_jobs_are_shared_by_both_instances(stack: tuple) -> None:
    base, _ = stack
    job = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()
    deadline = time.monotonic() + 60
    while (status := httpx.get(f"{base}/v1/jobs/{job['job_id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert status["result"]["images"][0]["faces"][0]["dominant_emotion"] == "happy"


def test_a_rolling_restart_through_the_balancer_fails_no_request(stack: tuple) -> None:
    base, compose_run = stack
    with Load(f"{base}/v1/predict", PHOTO, clients=3).running() as load:
        for instance in ("api-1", "api-2"):
            compose_run("restart", instance)
            wait_for_both(base)
    print(f"rolling restart: {len(load.outcomes)} requests, {len(load.failures())} failed")
    assert len(load.outcomes) > 50
    assert load.failures() == []
