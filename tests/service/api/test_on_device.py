"""The face step in a real Chromium with onnxruntime-web, against the server's own on the same photo:
the same faces, the same aligned crops, the same probabilities."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest

from service.config import Settings
from service.inference.head_pose import head_pose
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from tests.helpers.browser import CHROMIUM, launch
from tests.helpers.clips import clip_frames
from tests.helpers.faces import fer_faces
from tests.helpers.live_service import LiveService, running_service
from training.scenes import place_faces

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
SCENE = place_faces(fer_faces("happy", 2) + fer_faces("sad", 1) + fer_faces("surprise", 1), 480, 640, 130, seed=11)
PNG = cv2.imencode(".png", SCENE.image)[1].tobytes()
ANALYSE = """async (png) => {
  const { FaceStep } = await import("/static/facestep.js");
  const step = await FaceStep.open("/v1/models/retinaface/browser", "/v1/models/emotion-fast/browser");
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const faces = await step.analyse(bitmap, bitmap.width, bitmap.height);
  return faces.map((f) => ({ box: f.box, landmarks: f.landmarks, score: f.score,
                             probabilities: f.probabilities, crop: Array.from(f.crop) }));
}"""


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    with running_service(emotion_models="emotion-fast", default_emotion_model="emotion-fast") as service:
        yield service


@pytest.fixture(scope="module")
def browser_faces(live: LiveService) -> list[dict]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(f"{live.base}/")
        faces = page.evaluate(ANALYSE, base64.b64encode(PNG).decode())
        browser.close()
    return faces


def test_the_browser_finds_the_same_faces_with_the_same_probabilities(live: LiveService, browser_faces: list) -> None:
    served = httpx.post(f"{live.base}/v1/predict", files={"files": ("scene.png", PNG)}).json()["images"][0]["faces"]
    assert len(browser_faces) == len(served) == 4
    classes = list(served[0]["emotions"])
    for ours, theirs in zip(browser_faces, served):
        box = theirs["box"]
        corners = [box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]]
        assert np.allclose(ours["box"], corners, atol=0.6)
        marks = [[p["x"], p["y"]] for p in theirs["landmarks"].values()]
        assert np.allclose(ours["landmarks"], marks, atol=0.6)
        assert ours["score"] == pytest.approx(theirs["detection_score"], abs=1e-3)
        assert np.allclose(ours["probabilities"], [theirs["emotions"][c] for c in classes], atol=0.01)


def test_the_browser_aligns_faces_as_the_server_does(browser_faces: list) -> None:
    runtime = load_runtime(Settings(emotion_models=["emotion-fast"], default_emotion_model="emotion-fast"), Metrics())
    crops = runtime.pipeline.prepare(PNG).faces.crops.astype(float)
    ours = np.array([face["crop"] for face in browser_faces], float).reshape(crops.shape)
    assert np.abs(ours - crops).mean() < 1.0 and np.abs(ours - crops).max() <= 8


def test_the_runtime_and_graphs_are_served_for_the_browser(live: LiveService) -> None:
    wasm = httpx.get(f"{live.base}/runtime/onnxruntime-web/1.31.1/ort-wasm-simd-threaded.wasm")
    assert wasm.headers["content-type"] == "application/wasm" and "immutable" in wasm.headers["cache-control"]
    assert httpx.get(f"{live.base}/runtime/onnxruntime-web/1.31.1/../metadata.json").status_code == 404
    described = httpx.get(f"{live.base}/v1/models/emotion-fast/browser").json()
    graph = httpx.get(f"{live.base}{described['graph']}").content
    assert hashlib.sha256(graph).hexdigest() == described["sha256"] and described["version"] == "3"
    assert httpx.get(f"{live.base}/v1/models/emotion/browser").status_code == 404  # not served here


HEAD_POSE = """async (landmarks) => {
  const { headPose } = await import("/static/facestep.js");
  return landmarks.map(headPose);
}"""


def test_the_browser_reads_head_pose_as_the_server_does(live: LiveService) -> None:
    """The page's scaled-orthographic fit against the server's PnP, on two real people turning their heads."""
    from playwright.sync_api import sync_playwright

    runtime = load_runtime(Settings(emotion_models=["emotion-fast"], default_emotion_model="emotion-fast"), Metrics())
    frames = clip_frames("two-people-head-pose.webm")
    landmarks = [points for frame in frames for points in runtime.pipeline.detector.detect(frame).landmarks]
    served = np.array([head_pose(points) for points in landmarks])
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(f"{live.base}/")
        ours = np.array(page.evaluate(HEAD_POSE, [points.tolist() for points in landmarks]))
        browser.close()
    assert np.ptp(served[:, 0]) > 60  # they do turn
    assert np.abs(ours[:, :2] - served[:, :2]).max() < 3.0, np.abs(ours - served).max(axis=0)
