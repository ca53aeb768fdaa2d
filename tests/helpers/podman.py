"""Podman as the container tests drive it: through the runtime wrapper tests/container/setup.sh writes,
with images built from the project's real Dockerfile on the local Debian base."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.config import PROJECT_ROOT

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Podman:
    runtime: str  # the OCI runtime wrapper
    base_image: str  # the local Debian bookworm base with Python 3.11

    @classmethod
    def set_up(cls) -> Podman:
        """Run tests/container/setup.sh (idempotent, cached) and read back what it made."""
        script = PROJECT_ROOT / "tests" / "container" / "setup.sh"
        printed = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True, timeout=900)
        values = dict(line.split("=", 1) for line in printed.stdout.splitlines() if "=" in line)
        return cls(values["runtime"], values["base_image"])

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["podman", "--runtime", self.runtime, *args], capture_output=True, text=True, timeout=timeout, check=check
        )

    def build(self, target: str, tag: str) -> None:
        """Build a target of the real Dockerfile, as a user would, on the local base image."""
        mounts = (
            ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"PIP_CERT={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
        )
        self(
            "build", "--format", "docker", "--network", "host", *mounts,
            "--build-arg", f"BASE_IMAGE={self.base_image}", "--target", target, "-t", tag, str(PROJECT_ROOT),
            timeout=1200,
        )  # fmt: skip

    def build_context(self, folder: Path, tag: str) -> None:
        """Build a helper image (tests/container/images) on the local base image."""
        self("build", "--network", "host", "--build-arg", f"BASE_IMAGE={self.base_image}", "-t", tag, str(folder))

    def size_mb(self, image: str) -> float:
        return int(self("image", "inspect", image, "--format", "{{.Size}}").stdout) / 1e6

    def exit_code(self, container: str) -> int:
        return int(self("inspect", container, "--format", "{{.State.ExitCode}}").stdout)

    @contextmanager
    def running(self, image: str, *options: str, name: str) -> Iterator[str]:
        """A detached container, removed afterwards whatever happened."""
        self("rm", "-f", name, check=False)
        self("run", "-d", "--name", name, *options, image)
        try:
            yield name
        finally:
            self("rm", "-f", "-t", "0", name, check=False)


def wait_ready(base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{base} not ready within {timeout_s} s")
