"""Ad tests from the respondent's side: an ad of known length, a participant link, and a real Chromium
opening it with a fake webcam, sent back to a panel that the browser answers itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.helpers.browser import camera_flags, launch

RETURN = "https://panel.example/return?rid={viewer}&st={status}"


def ad_clip(folder: Path, seconds: float) -> bytes:
    """A VP8 WebM ad of known length, as browsers play it."""
    path = folder / f"ad-{seconds}.webm"
    source = f"testsrc=size=320x240:rate=10:duration={seconds}"
    encode = ["-c:v", "libvpx", "-b:v", "300k", str(path)]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, *encode], check=True)
    return path.read_bytes()


def new_link(base: str, study_id: str, **more: object) -> dict:
    made = httpx.post(f"{base}/v1/studies/{study_id}/links", json={"return_url": RETURN, **more})
    assert made.status_code == 201, made.text
    return made.json()


def open_page(playwright, camera: Path, url: str):
    """(browser, page) with the camera file as the webcam, at the link's page."""
    browser = launch(playwright, [*camera_flags(camera), "--autoplay-policy=no-user-gesture-required"])
    page = browser.new_page()
    page.route("https://panel.example/**", lambda route: route.fulfill(status=200, body="back at the panel"))
    page.goto(url)
    return browser, page


def returned(page, timeout_ms: float = 30_000) -> dict[str, list[str]]:
    """The query the page sent the respondent back to the panel with."""
    page.wait_for_url("https://panel.example/**", timeout=timeout_ms)
    return parse_qs(urlsplit(page.url).query)
