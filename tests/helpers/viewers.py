"""Synthetic study viewers with a planted truth: webcam-like recordings made from real FER-2013 faces.

One viewer is one person slot in the frame: a neutral face throughout, a happy face during a chosen
window for the viewers planted to smile, no face while a viewer has left the frame. Faces are
screened through the running service first, so the planted truth is what a correct model sees:
happy faces it scores happy, neutral faces it does not, all turned to the camera.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

from tests.helpers.clips import write_clip
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import background, place_faces

WIDTH, HEIGHT, FACE, FPS = 320, 240, 120, 5
VIEWERS = 30
SMILE = (5, 7)  # planted smiles: seconds 5 and 6 of the stimulus
LEFT = (2, 4)  # three viewers leave the frame in seconds 2 and 3


@dataclass(frozen=True)
class Viewer:
    """Seconds are of the recording; windows are [start, end) in whole seconds."""

    neutral: np.ndarray
    happy: np.ndarray | None = None
    smile: tuple[int, int] | None = None
    away: tuple[int, int] | None = None
    seconds: int = 10

    def frames(self, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        canvas = background(HEIGHT, WIDTH, rng)
        x, y = (WIDTH - FACE) // 2 + int(rng.integers(-20, 21)), (HEIGHT - FACE) // 2 + int(rng.integers(-10, 11))
        frames = []
        for index in range(self.seconds * FPS):
            second = index // FPS
            frame = canvas.copy()
            if not inside(second, self.away):
                face = self.happy if inside(second, self.smile) else self.neutral
                big = cv2.resize(face, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
                frame[y : y + FACE, x : x + FACE] = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
            frames.append(frame)
        return frames

    def recording(self, path: Path, seed: int) -> bytes:
        return write_clip(path, self.frames(seed), FPS)


def inside(second: int, window: tuple[int, int] | None) -> bool:
    return window is not None and window[0] <= second < window[1]


def screened_faces(base: str, emotion: str, count: int, split: str = "test") -> list[np.ndarray]:
    """`count` real faces of a class that the service finds frontal and scores as the truth needs:
    happy faces at P(happy) >= 0.8, neutral faces at P(happy) < 0.1 with neutral the top class."""
    kept: list[np.ndarray] = []
    candidates = fer_faces(emotion, count * 10, split)
    for start in range(0, len(candidates), 8):
        batch = candidates[start : start + 8]
        scene = place_faces(batch, 340, 900, 150, seed=start)  # two rows of four
        faces = httpx.post(f"{base}/v1/predict", files={"files": ("s.jpg", jpeg(scene.image))}, timeout=60).json()
        for face in faces["images"][0]["faces"]:
            centre = (face["box"]["x"] + face["box"]["width"] / 2, face["box"]["y"] + face["box"]["height"] / 2)
            index = next(
                (i for i, b in enumerate(scene.boxes) if b[0] <= centre[0] <= b[2] and b[1] <= centre[1] <= b[3]), None
            )
            pose, scores = face["head_pose"], face["emotions"]
            frontal = pose is not None and abs(pose["yaw"]) < 15 and abs(pose["pitch"]) < 20
            if emotion == "happy":
                fits = scores["happy"] >= 0.8
            else:
                fits = scores["happy"] < 0.1 and face["dominant_emotion"] == "neutral"
            if index is not None and frontal and fits:
                kept.append(batch[index])
        if len(kept) >= count:
            return kept[:count]
    raise AssertionError(f"only {len(kept)} screened {emotion} faces of {len(candidates)}")


def planted_viewers(faces: dict, smiling: int) -> list[Viewer]:
    """30 viewers: the first `smiling` smile in SMILE; viewers 18 to 20 leave in LEFT; 21 is mostly away and
    22's recording is 4 s short (both excluded)."""
    viewers = []
    for i in range(VIEWERS):
        away = LEFT if 18 <= i <= 20 else (1, 8) if i == 21 else None
        happy = faces["happy"][i] if i < smiling else None
        viewers.append(
            Viewer(faces["neutral"][i], happy, SMILE if happy is not None else None, away, 6 if i == 22 else 10)
        )
    return viewers


def run_study(base: str, viewers: list[Viewer], folder: Path, name: str, seed: int = 0) -> str:
    study = httpx.post(
        f"{base}/v1/studies",
        json={"name": name, "stimulus_duration_s": 10, "events": [{"time_s": 5, "label": "brand appears"}]},
    )
    assert study.status_code == 201, study.text
    study_id = study.json()["study_id"]
    for i, viewer in enumerate(viewers):
        recording = viewer.recording(folder / f"{name}-{i}.mp4", seed + i)
        sent = httpx.post(
            f"{base}/v1/studies/{study_id}/sessions", files={"file": ("rec.mp4", recording)}, data={"viewer": f"p{i}"}
        )
        assert sent.status_code == 202, sent.text
    wait_for_sessions(base, study_id)
    return study_id


def wait_for_sessions(base: str, study_id: str) -> list[dict]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{base}/v1/studies/{study_id}/sessions").json()["sessions"]
        if all(s["status"] != "queued" for s in sessions):
            return sessions
        time.sleep(0.3)
    raise AssertionError("sessions still queued")
