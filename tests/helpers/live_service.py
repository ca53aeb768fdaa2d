"""Start the real service in a child process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveService:
    base: str  # e.g. http://127.0.0.1:PORT
    process: subprocess.Popen
    log_file: IO[str]

    def rss_mb(self) -> float:
        """Resident memory of the service and its children (uvicorn workers), in MB."""
        pid = self.process.pid
        pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        kilobytes = 0
        for child in pids:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kilobytes += int(line.split()[1])
        return round(kilobytes / 1024, 1)

    def log(self) -> str:
        """Everything the service has written to stderr so far (a file, so a chatty log never blocks it)."""
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read()


def service_environment(**settings: object) -> dict[str, str]:
    """This process's environment with the settings as EMOTION_* variables, for a service process."""
    return {**os.environ, **{f"EMOTION_{key.upper()}": str(value) for key, value in settings.items()}}


@contextlib.contextmanager
def running_service(
    startup_timeout_s: float = 60, port: int | None = None, **settings: object
) -> Iterator[LiveService]:
    """Yield the running service once /readyz answers 200; settings become EMOTION_* variables.

    It listens on `port`, or on a free one. It is killed on exit if still running.
    """
    env = service_environment(host="127.0.0.1", port=port or free_port(), **settings)
    with tempfile.TemporaryFile(mode="w+") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "service"], env=env, stderr=log_file, text=True)
        service = LiveService(f"http://127.0.0.1:{env['EMOTION_PORT']}", process, log_file)
        try:
            deadline = time.monotonic() + startup_timeout_s
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{service.base}/readyz", timeout=1).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not become ready (exit code {process.poll()})")
                time.sleep(0.2)
            yield service
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
