"""Real clips from ../shared/data/videos, and edge-case clips made from them for a test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.data import videos_dir

# Every frame of each clip shows this many people (the clips' README).
PEOPLE = {
    "asl-thanks.mkv": 1,
    "asl-please.mp4": 1,
    "two-people-head-pose.webm": 2,
    "one-person-head-pose.gif": 1,
}


def clip_bytes(name: str) -> bytes:
    return (videos_dir() / name).read_bytes()


def clip_frames(name: str) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(videos_dir() / name))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    return frames


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float, fourcc: str = "mp4v") -> bytes:
    """Encode frames with OpenCV's writer (MPEG-4 in .mp4, Motion JPEG in .avi); returns the file's bytes."""
    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (first.shape[1], first.shape[0]))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    writer.write(first)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def ffmpeg(*args: str) -> None:
    """Run Debian's ffmpeg (installed by .ci/run), for what OpenCV's writer cannot do: metadata, timestamps."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)
