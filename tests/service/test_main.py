"""`python -m service` refuses, in one line, to start open when its key file gives no key, or with settings that
disagree."""

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


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"EMOTION_DEFAULT_EMOTION_MODEL": "nope"}, "default_emotion_model 'nope'"),
        ({"EMOTION_WEBHOOK_RETRY_DELAYS_S": "5,-1"}, "EMOTION_WEBHOOK_RETRY_DELAYS_S"),
        ({"EMOTION_MEDIA_ORPHAN_AGE_S": "5"}, "media_orphan_age_s"),
        ({"EMOTION_WEBHOOK_CONCURRENCY": "1", "EMOTION_WEBHOOK_TARGET_CONCURRENCY": "2"}, "webhook_target_concurrency"),
    ],
)
@pytest.mark.parametrize("command", [[], ["worker"]])
def test_settings_that_disagree_stop_the_process_in_one_line(variables: dict, named: str, command: list) -> None:
    """Rules between settings are checked before anything loads, for the API and the worker alike."""
    env = {**os.environ, **variables, "EMOTION_PORT": "1"}
    ended = subprocess.run(
        [sys.executable, "-m", "service", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert ended.returncode == EXIT_CONFIG
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "not starting" in lines[0], ended.stderr
