"""Make the README's pictures from real inputs: the demo page after a photo and after a clip, and an
annotated photo.

python docs/make_screenshots.py      (needs Chromium and the dev extra)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import httpx

from tests.conftest import CHROMIUM_FLAGS, fer_faces
from tests.helpers.data import videos_dir
from tests.helpers.live_service import running_service
from training.scenes import place_faces

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    faces = fer_faces("happy", 1) + fer_faces("surprise", 1) + fer_faces("sad", 1) + fer_faces("angry", 1)
    scene = place_faces(faces, 480, 800, 170, seed=7).image
    with tempfile.TemporaryDirectory() as tmp, running_service() as service:
        path = Path(tmp) / "scene.jpg"
        cv2.imwrite(str(path), scene, [cv2.IMWRITE_JPEG_QUALITY, 92])
        annotated = httpx.post(f"{service.base}/v1/annotate", files={"files": ("scene.jpg", path.read_bytes())})
        annotated.raise_for_status()
        (OUT / "annotated.jpg").write_bytes(annotated.content)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 980})
            page.goto(f"{service.base}/")
            page.set_input_files("#file-input", str(path))
            page.wait_for_selector("#faces li.face >> nth=3", timeout=30_000)
            page.screenshot(path=str(OUT / "demo.png"), full_page=True)
            # Video mode on a real two-person clip (Intel IoT DevKit sample videos, CC BY 4.0), paused at 2.5 s.
            page.click("#mode-video")
            page.set_input_files("#video-input", str(videos_dir() / "two-people-head-pose.webm"))
            page.wait_for_selector("#tracks li >> nth=1", timeout=60_000)
            page.wait_for_function("document.getElementById('clip').readyState >= 2", timeout=20_000)
            page.evaluate("(() => { const c = document.getElementById('clip'); c.pause(); c.currentTime = 2.5; })()")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "demo-video.png"), full_page=True)
            browser.close()
    print(f"wrote {OUT / 'demo.png'}, {OUT / 'demo-video.png'} and {OUT / 'annotated.jpg'}")


if __name__ == "__main__":
    main()
