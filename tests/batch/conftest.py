"""A real Ray cluster and a real archive: FER-2013 faces in scenes, frames of the shared clips, broken files."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.archive import write_archive
from tests.helpers.live_service import free_port
from tests.helpers.object_store import s3_server, wait_for_port

# The test cluster requires a token, as a shared cluster should. Ray reads these when it is imported,
# so they are set before any test module imports it; the jobs the tests start inherit them.
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))


@pytest.fixture(scope="session")
def object_store() -> Iterator[dict[str, str]]:
    """moto's S3 server on a loopback port; yields the environment that points clients at it."""
    with s3_server() as environment:
        yield environment


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


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int | None]]:
    folder = tmp_path_factory.mktemp("archive")
    return folder, write_archive(folder, 24)
