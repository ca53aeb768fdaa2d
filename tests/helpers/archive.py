"""An image archive as the batch job meets one, and the batch command line run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.clips import clip_frames
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces

BROKEN = {"truncated.jpg": "undecodable", "notes.txt": "unsupported_type", "empty.png": "empty"}


def write_archive(folder: Path, scenes: int) -> dict[str, int]:
    """Scenes of one or two real FER-2013 faces, two frames of the shared clips, and broken files.

    Returns the number of faces placed in each file (None for the broken ones).
    """
    folder.mkdir(parents=True, exist_ok=True)
    emotions = ["happy", "surprise", "sad", "angry", "neutral"]
    faces = {e: fer_faces(e, scenes) for e in emotions}
    expected: dict[str, int | None] = {}
    for i in range(scenes):
        people = 2 if i % 3 == 0 else 1
        chosen = [faces[emotions[(i + k) % len(emotions)]][i] for k in range(people)]
        image = place_faces(chosen, 320, 480, 130, seed=i).image
        name = f"scenes/scene-{i:03d}.jpg"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(jpeg(image))
        expected[name] = people
    for clip, people in (("two-people-head-pose.webm", 2), ("asl-thanks.mkv", 1)):
        name = f"photos/{clip.split('.')[0]}.jpg"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(jpeg(clip_frames(clip)[10]))
        expected[name] = people
    cv2.imwrite(str(folder / "blank.png"), np.full((240, 320, 3), 127, np.uint8))
    expected["blank.png"] = 0
    (folder / "truncated.jpg").write_bytes((folder / "scenes/scene-001.jpg").read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    expected.update(dict.fromkeys(BROKEN))
    return expected


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """emotion-batch as a user runs it, in its own process."""
    command = [str(Path(sys.executable).parent / "emotion-batch"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
