"""Two real service processes behind a real HAProxy (deploy/haproxy/haproxy.cfg), under closed-loop load.

Rolling restarts lose nothing; a killed or hung instance costs only the requests it was holding.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest

from service.config import PROJECT_ROOT
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import LiveService, free_port, running_service
from tests.helpers.load import Load
from training.scenes import place_faces

CONFIG = PROJECT_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PHOTO = jpeg(place_faces(fer_faces("happy", 1), 240, 320, 120, seed=70).image)
CLIENTS = 6
# Short enough for a quick test, longer than the balancer's 2 checks 500 ms apart.
DRAIN_S = 1.5

pytestmark = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)"
)


def wait_until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture()
def balancer() -> Iterator[tuple[str, list[int]]]:
    """HAProxy on a free loopback port, in front of two more free ports for the instances."""
    port, backends = free_port(), [free_port(), free_port()]
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "API_1": f"127.0.0.1:{backends[0]}",
        "API_2": f"127.0.0.1:{backends[1]}",
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(["haproxy", "-db", "-f", str(CONFIG)], env=env, stdout=log, stderr=log)
        try:
            yield f"http://127.0.0.1:{port}", backends
        finally:
            process.terminate()
            process.wait(timeout=10)


def instance(port: int):
    """An instance serving only the fast model: balancing does not depend on the model, start-up does."""
    return running_service(
        port=port,
        drain_s=DRAIN_S,
        shutdown_timeout_s=20,
        emotion_models="emotion-fast",
        default_emotion_model="emotion-fast",
    )


def test_rolling_restart_of_both_instances_fails_no_request(balancer: tuple[str, list[int]]) -> None:
    base, ports = balancer
    load = Load(f"{base}/v1/predict", PHOTO, CLIENTS)
    with contextlib.ExitStack() as stack:
        services = [stack.enter_context(instance(p)) for p in ports]
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200)
        with load.running():
            for index, port in enumerate(ports):
                time.sleep(1)
                services[index].process.send_signal(signal.SIGTERM)
                assert services[index].process.wait(timeout=60) == 0
                restarted_at = time.monotonic()
                services[index] = stack.enter_context(instance(port))
                ready_at = time.monotonic()
                name = f"api-{index + 1}"
                wait_until(lambda name=name, ready_at=ready_at: load.served_by(name, ready_at) > 3)
                # The balancer sent it nothing before it was ready: it cannot even connect before then.
                assert not any(o.server == name and restarted_at < o.done < ready_at for o in load.outcomes)
            time.sleep(1)
    print(f"rolling restart: {len(load.outcomes)} requests, {len(load.failures())} failed")  # shown with -s
    assert len(load.outcomes) > 50
    assert load.failures() == []
    assert load.served_by("api-1", 0) and load.served_by("api-2", 0)


@contextlib.contextmanager
def under_load(balancer: tuple[str, list[int]], load: Load) -> Iterator[LiveService]:
    """Both instances up, clients posting through the balancer for 2 s already; yields the first instance."""
    base, ports = balancer
    with instance(ports[0]) as first, instance(ports[1]):
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200)
        with load.running():
            time.sleep(2)
            yield first


def test_a_killed_instance_fails_only_the_requests_it_was_holding(balancer: tuple[str, list[int]]) -> None:
    load = Load(f"{balancer[0]}/v1/predict", PHOTO, CLIENTS)
    with under_load(balancer, load) as first:
        killed_at = time.monotonic()
        first.process.kill()
        time.sleep(3)
    failures = load.failures()
    print(f"kill -9: {len(load.outcomes)} requests, {len(failures)} failed")
    assert len(failures) <= CLIENTS  # at most one in flight per client on the killed instance
    # None sent after the balancer's next health checks (2 failed, 500 ms apart) failed.
    assert all(f.sent < killed_at + 1.0 for f in failures)
    assert sum(o.sent > killed_at + 1 for o in load.outcomes) > 10  # the other instance carried on


def test_a_hung_instance_is_taken_out_and_comes_back(balancer: tuple[str, list[int]]) -> None:
    load = Load(f"{balancer[0]}/v1/predict", PHOTO, CLIENTS)
    with under_load(balancer, load) as first:
        stopped_at = time.monotonic()
        first.process.send_signal(signal.SIGSTOP)
        time.sleep(3)
        first.process.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        wait_until(lambda: load.served_by("api-1", resumed_at + 1) > 3, timeout_s=30)
    failures = load.failures()
    print(f"SIGSTOP 3 s: {len(load.outcomes)} requests, {len(failures)} failed")
    # Requests the hung instance held wait for it and are answered once it resumes, or time out at
    # the balancer: either way, only those sent before the health checks took it out (1 s).
    assert all(f.sent < stopped_at + 1.5 for f in failures)
    assert len(failures) <= CLIENTS
    assert sum(o.sent > stopped_at + 2 and o.done < resumed_at for o in load.outcomes) > 5  # api-2 carried on
