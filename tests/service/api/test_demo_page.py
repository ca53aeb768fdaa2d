"""The demo page in headless Chromium against a real server: upload a scene, see faces and bars;
webcam mode with Chromium's fake camera playing a scene."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.helpers.browser import CHROMIUM, camera_flags, launch, write_y4m
from tests.helpers.clips import clip_frames
from tests.helpers.data import videos_dir
from tests.helpers.faces import fer_faces
from tests.helpers.live_service import LiveService, running_service
from training.scenes import place_faces

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian packages chromium and chromium-driver)"
)
SCENE = place_faces(fer_faces("happy", 1) + fer_faces("surprise", 1), 480, 640, 170, seed=70).image


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    with running_service() as service:
        yield service


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


def test_webcam_mode_streams_a_real_clip_with_stable_people(live: LiveService, tmp_path: Path) -> None:
    """Chromium's fake camera plays the two-person clip; the page streams it over /v1/stream."""
    from playwright.sync_api import sync_playwright

    video = tmp_path / "camera.y4m"
    write_y4m(clip_frames("two-people-head-pose.webm"), video)
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
        answered = "/latency: \\d+ ms/.test(document.getElementById('latency').textContent)"
        page.wait_for_function(answered, timeout=20_000)
        titles = set()
        for _ in range(10):  # ten answers, a tenth of a second apart: the same two people throughout
            page.wait_for_selector("#faces li.face >> nth=1", timeout=20_000)
            titles |= {t.split(":")[0] for t in page.locator("#faces li.face h2").all_inner_texts()}
            page.wait_for_timeout(100)
        assert titles == {"Person #1", "Person #2"}
        assert re.fullmatch(r"fps: [\d.]+ · latency: \d+ ms · dropped: \d+", page.locator("#latency").inner_text())
        page.click("#webcam-stop")
        assert page.locator("#status").inner_text() == "Camera off."
        browser.close()


def test_webcam_on_this_device_finds_the_people_and_sends_no_frame(live: LiveService, tmp_path: Path) -> None:
    """The same camera analysed in the page by onnxruntime-web: faces and bars, and no request carries a frame."""
    from playwright.sync_api import sync_playwright

    video = tmp_path / "camera.y4m"
    write_y4m(clip_frames("two-people-head-pose.webm"), video)
    with sync_playwright() as playwright:
        browser = launch(playwright, camera_flags(video))
        page = browser.new_page()
        sent, sockets = [], []
        page.on("request", lambda request: sent.append((request.method, request.url, request.post_data_buffer)))
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.goto(f"{live.base}/")
        page.click("#mode-webcam")
        page.check("#webcam-on-device")
        page.click("#webcam-start")
        page.wait_for_function(
            "/analysed on this device/.test(document.getElementById('status').textContent)", timeout=60_000
        )
        page.wait_for_selector("#faces li.face >> nth=1", timeout=20_000)
        assert re.fullmatch(r"on this device · fps: [\d.]+ · analysis: \d+ ms", page.locator("#latency").inner_text())
        page.click("#webcam-stop")
        browser.close()
    assert sockets == [] and all(method == "GET" and not body for method, _, body in sent), sent
    assert any(url.endswith("/graph.onnx") for _, url, _ in sent)


def test_video_mode_plays_the_clip_with_boxes_and_a_chart_per_person(live: LiveService) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright, ["--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(f"{live.base}/")
        page.click("#mode-video")
        page.set_input_files("#video-input", str(videos_dir() / "two-people-head-pose.webm"))
        page.wait_for_selector("#tracks li >> nth=1", timeout=60_000)
        assert page.locator("#tracks li").count() == 2
        assert page.locator("#tracks li h2").first.inner_text().startswith("Person #1: mostly ")
        assert "2 people in 23 frames" in page.locator("#status").inner_text()
        page.wait_for_function("document.getElementById('clip').currentTime > 1", timeout=20_000)
        assert re.fullmatch(r"[\d.]+ s: 2 face\(s\)", page.locator("#clip-now").inner_text())
        # The overlay has the clip's own size and something drawn on it.
        drawn = page.evaluate(
            """() => { const c = document.getElementById('clip-overlay');
                       const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < pixels.length; i += 4) n += pixels[i] > 0;
                       return [c.width, c.height, n]; }"""
        )
        assert drawn[:2] == [480, 270] and drawn[2] > 500
        browser.close()
