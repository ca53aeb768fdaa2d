"""The demo page in headless Chromium against a real server: upload a scene, see faces and bars;
webcam mode with Chromium's fake camera playing a scene."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from service.devserver import LiveService, running_service
from tests.conftest import CHROMIUM_FLAGS, fer_faces
from training.scenes import place_faces

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian packages chromium and chromium-driver)"
)
SCENE = place_faces(fer_faces("happy", 1) + fer_faces("surprise", 1), 480, 640, 170, seed=70).image


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    with running_service() as service:
        yield service


def write_y4m(image: np.ndarray, path: Path, frames: int = 8) -> None:
    """A short raw video (YUV4MPEG2, 4:2:0) of one still image, for Chromium's fake camera."""
    height, width = image.shape[:2]
    yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F4:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + yuv)


def launch(playwright, extra: list[str] = ()):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *extra])


def test_upload_shows_faces_and_bars(live: LiveService, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    scene = tmp_path / "scene.jpg"
    cv2.imwrite(str(scene), SCENE)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live.base}/")
        page.set_input_files("#file-input", str(scene))
        page.wait_for_selector("#faces li.face >> nth=1", timeout=20_000)
        faces = page.locator("#faces li.face")
        assert faces.count() == 2
        assert faces.first.locator(".bar").count() == 7
        # The bar of the dominant emotion is drawn, and drawn longest.
        widths = faces.first.locator(".fill").evaluate_all("bars => bars.map(b => b.getBoundingClientRect().width)")
        values = faces.first.locator(".value").all_inner_texts()
        assert max(widths) > 20 and widths.index(max(widths)) == values.index(max(values, key=lambda v: float(v[:-1])))
        assert "2 face(s) found" in page.locator("#status").inner_text()
        assert page.evaluate("document.getElementById('view').width") == 640
        browser.close()


def test_webcam_mode_overlays_faces_and_shows_latency(live: LiveService, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    video = tmp_path / "camera.y4m"
    write_y4m(SCENE, video)
    camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    with sync_playwright() as playwright:
        browser = launch(playwright, camera)
        page = browser.new_page()
        page.goto(f"{live.base}/")
        page.click("#mode-webcam")
        page.click("#webcam-start")
        page.wait_for_function("document.getElementById('latency').textContent.endsWith('ms')", timeout=20_000)
        page.wait_for_selector("#faces li.face >> nth=1", timeout=20_000)
        assert page.locator("#faces li.face").count() == 2
        page.click("#webcam-stop")
        browser.close()
