"""The frame step with a real detector and a real model: cuts end tracks, empty frames skip the model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.config import Settings
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from service.tracking.step import FrameStep
from service.tracking.tracker import FaceTracker
from tests.helpers.faces import fer_faces
from training.scenes import place_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

SCENE = place_faces(fer_faces("happy", 1), 240, 320, 110, seed=3).image


def test_a_face_keeps_its_track_until_a_cut_and_an_empty_frame_never_calls_the_model(settings: Settings) -> None:
    runtime = load_runtime(settings, Metrics())
    step = FrameStep(runtime.pipeline, FaceTracker(0.0, 1.0))
    calls = []

    async def classify(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return runtime.emotion().classifier(crops)

    async def run(frames: list[np.ndarray]) -> list[list[int]]:
        out = []
        for i, image in enumerate(frames):
            faces = await step.track(step.prepare(i / 5, image), classify)
            out.append(faces.track_ids.tolist())
        return out

    blank = np.full_like(SCENE, 255)
    ids = asyncio.run(run([SCENE, SCENE, blank, SCENE]))
    assert ids[0] == ids[1] == [1] and ids[2] == []
    assert ids[3] == [2]  # the cut to the blank frame and back ended track 1
    assert calls == [1, 1, 1]  # nothing to classify on the blank frame
