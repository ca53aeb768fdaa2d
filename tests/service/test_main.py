"""`python -m service` refuses, in one log line, to start open when its key file gives no key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXIT_CONFIG = 78


@pytest.mark.parametrize("content", [None, "\n  \n"])
def test_an_unreadable_or_empty_key_file_stops_the_service_in_one_line(tmp_path: Path, content: str | None) -> None:
    key_file = tmp_path / "api-keys"
    if content is not None:
        key_file.write_text(content)
    env = {**os.environ, "EMOTION_API_KEYS_FILE": str(key_file), "EMOTION_PORT": "1"}
    ended = subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60)
    assert ended.returncode == EXIT_CONFIG
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in ended.stderr
    assert str(key_file) in lines[0] and "not starting" in lines[0]
