"""Make the documentation's pictures from real inputs: the demo page after a photo and after a clip, an
annotated photo, and a planted audience study's chart and page (its report is printed, for
docs/studies.md).

python docs/make_screenshots.py      (needs Chromium and the dev extra)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cv2
import httpx

from tests.helpers.browser import CHROMIUM_FLAGS
from tests.helpers.data import videos_dir
from tests.helpers.faces import fer_faces
from tests.helpers.live_service import running_service
from tests.helpers.viewers import planted_viewers, run_study, screened_faces
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
            study_id = planted_study(service.base, Path(tmp))
            page.goto(f"{service.base}/studies/{study_id}")
            page.wait_for_selector("#sessions tr >> nth=30", timeout=30_000)
            page.screenshot(path=str(OUT / "demo-studies.png"), full_page=True)
            browser.close()
    print(f"wrote the demo pages, {OUT / 'annotated.jpg'} and {OUT / 'study-report.png'}")


def planted_study(base: str, folder: Path) -> str:
    """The tests' planted study (30 viewers, 18 smiling in seconds 5 and 6): its chart saved, its report printed."""
    faces = {"happy": screened_faces(base, "happy", 18), "neutral": screened_faces(base, "neutral", 30)}
    study_id = run_study(base, planted_viewers(faces, smiling=18), folder, "Spring campaign, cut A")
    (OUT / "study-report.png").write_bytes(httpx.get(f"{base}/v1/studies/{study_id}/report.png").content)
    report = httpx.get(f"{base}/v1/studies/{study_id}/report").json()
    print(json.dumps({k: v for k, v in report.items() if k != "seconds"}, indent=1))
    print(json.dumps(report["seconds"][5], indent=1))
    return study_id


if __name__ == "__main__":
    main()
