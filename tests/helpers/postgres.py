"""A real PostgreSQL server for a test: Debian's binaries (installed by .ci/run), a fresh cluster in a
temporary folder, listening on a free loopback port. initdb refuses root, so as root it runs as the
`postgres` user."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.live_service import free_port


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("needs PostgreSQL's server (apt-get install postgresql)")
    return Path(found[-1]).parent


def as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL (postgresql+psycopg://...) of a new, empty database server."""
    binaries = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]), **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        as_postgres(
            [str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), **run)
        shutil.rmtree(folder, ignore_errors=True)
