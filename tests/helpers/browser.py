"""Headless Chromium as root and offline: no sandbox, and no background calls home; and a camera file
for its fake webcam."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

CHROMIUM = shutil.which("chromium")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright, extra: list[str] = ()):
    """Debian's Chromium through Playwright, with the flags above and any others."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *extra])


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 12) -> None:
    """A raw video (YUV4MPEG2, 4:2:0) of the frames, for Chromium's fake camera, which loops it."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def camera_flags(y4m: Path) -> list[str]:
    """Chromium's fake webcam playing the file (looping it from when the camera opens), allowed at once."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]
