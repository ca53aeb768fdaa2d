"""Detection scheduling with the real detector on real faces: key frames, regions around tracked faces,
new faces found within the key interval, cuts and lost faces sending it back to full detection."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from service.config import Settings
from service.ops.metrics import Metrics
from service.results import track_results, tracked_faces
from service.runtime import Runtime, load_runtime
from service.tracking.schedule import DetectionSchedule
from service.tracking.step import FrameStep
from service.tracking.tracker import FaceTracker, iou_matrix
from service.video.analysis import ClipAnalysis, open_clip
from tests.helpers.clips import PEOPLE, clip_bytes
from tests.helpers.faces import fer_faces
from training.scenes import background

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

FACES = fer_faces("neutral", 2)
FPS = 10
KEY_INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return load_runtime(Settings(), Metrics())


def frame(people: list[tuple[np.ndarray, int, int]], seed: int = 0) -> np.ndarray:
    """A 640x480 frame with each (face, x, y) pasted at 120 px."""
    canvas = background(480, 640, np.random.default_rng(seed))
    for face, x, y in people:
        canvas[y : y + 120, x : x + 120] = cv2.cvtColor(cv2.resize(face, (120, 120)), cv2.COLOR_GRAY2BGR)
    return canvas


def prepared(step: FrameStep, frames: list[np.ndarray]) -> list:
    return [step.prepare(i / FPS, image).prepared.faces for i, image in enumerate(frames)]


def new_step(runtime: Runtime) -> FrameStep:
    return FrameStep(runtime.pipeline, FaceTracker(0.0, 1.0), DetectionSchedule(KEY_INTERVAL_S, max_gap_s=1.0))


def test_tracked_faces_are_found_in_regions_between_key_frames(runtime: Runtime) -> None:
    frames = [frame([(FACES[0], 100 + 4 * i, 150)]) for i in range(25)]  # walking right, 40 px a second
    detections = prepared(new_step(runtime), frames)
    assert all(len(found) == 1 for found in detections)
    kinds = ["region" if found.region[0] else "full" for found in detections]
    assert [i for i, kind in enumerate(kinds) if kind == "full"] == [0, 10, 20]  # one key frame a second


def test_a_new_person_walking_in_is_found_within_the_key_interval(runtime: Runtime) -> None:
    arrives = 23  # frame 23, 2.3 s: between key frames 2.0 s and 3.0 s
    frames = [frame([(FACES[0], 80, 150)] + ([(FACES[1], 420, 150)] if i >= arrives else [])) for i in range(40)]
    detections = prepared(new_step(runtime), frames)
    found = next(i for i, d in enumerate(detections) if len(d) == 2)
    assert found == 30  # the next key frame
    assert (found - arrives) / FPS <= KEY_INTERVAL_S
    assert all(len(d) == 2 for d in detections[found:])


def test_a_cut_and_a_lost_face_bring_back_full_detection(runtime: Runtime) -> None:
    step = new_step(runtime)
    scene = [frame([(FACES[0], 100, 150)]) for _ in range(3)]
    jumped = [frame([(FACES[0], 420, 200)]) for _ in range(3)]  # too far for its region: lost, then found
    cut = [frame([(FACES[1], 300, 50)], seed=9) for _ in range(3)]  # another shot
    detections = prepared(step, scene + jumped + cut)
    kinds = [["region" if region else "full" for region in found.region] for found in detections]
    assert kinds[:3] == [["full"], ["region"], ["region"]]
    assert kinds[3] == [] and kinds[4] == ["full"] and kinds[5] == ["region"]  # missed, then found again
    assert kinds[6] == ["full"]  # the cut
    assert detections[4].boxes[0, 0] > 400 and detections[6].boxes[0, 1] < 100


def test_region_detection_gives_the_same_people_as_full_detection_on_real_clips(runtime: Runtime) -> None:
    """Every shared clip: the same tracks, boxes within IoU 0.8 of full detection's on every frame,
    emotions within 0.1 (L1) on average."""

    async def analysed(name: str, detection: str) -> tuple[list, int]:
        settings = runtime.settings.model_copy(update={"detection": detection})
        clip = open_clip(clip_bytes(name), 5.0, settings)
        served = runtime.emotion()

        async def classify(crops: np.ndarray) -> np.ndarray:
            return served.classifier(crops)

        analysis = ClipAnalysis(clip, 5.0, runtime.pipeline, classify, runtime.metrics, settings.tracking, 0.0, False)
        frames = [tracked_faces(frame.faces, served.classifier.classes) async for frame in analysis.frames()]
        return frames, len(track_results(analysis.summary))

    for name, people in PEOPLE.items():
        (full, full_tracks), (region, region_tracks) = (asyncio.run(analysed(name, d)) for d in ("full", "region"))
        assert full_tracks == region_tracks == people, name
        distances = []
        for faces_full, faces_region in zip(full, region):
            assert len(faces_full) == len(faces_region), name
            if not faces_full:
                continue
            boxes = [
                np.array([[f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height] for f in faces])
                for faces in (faces_full, faces_region)
            ]
            overlaps = iou_matrix(*boxes)
            assert np.all(overlaps.max(axis=1) >= 0.8), name
            for i, j in enumerate(overlaps.argmax(axis=1)):
                a, b = faces_full[i].raw_emotions.model_dump(), faces_region[j].raw_emotions.model_dump()
                distances.append(sum(abs(a[c] - b[c]) for c in a))
        assert np.mean(distances) <= 0.1, name
        assert any(f.detection == "region" for faces in region for f in faces), name
