"""On-device analysis in headless Chromium: the frame rate a viewer's browser keeps, how soon it analyses
its first frame, what a viewer downloads (budget 15 MB besides the ad) and what the page sends per
minute of viewing (budget 50 KB)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.helpers.browser import camera_flags, launch
from tests.helpers.data import videos_dir
from tests.helpers.links import ad_clip
from tests.helpers.live_service import running_service

AD_S = 30


def camera_file(folder: Path) -> Path:
    """A real person turning his head, looped past the camera check and the ad, as the fake webcam."""
    path = folder / "viewer.y4m"
    looped = ["-stream_loop", "30", "-i", str(videos_dir() / "one-person-head-pose.gif"), "-vf", "fps=12"]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *looped, "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def bench_on_device() -> dict:
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_service(
            emotion_models="emotion-fast",
            default_emotion_model="emotion-fast",
            link_secret="a-benchmark-secret",
            database_url=f"sqlite:///{tmp}/jobs.db",
            media_store=f"{tmp}/media",
        ) as live,
    ):
        folder = Path(tmp)
        base = live.base
        study = httpx.post(f"{base}/v1/studies", json={"name": "bench", "stimulus_duration_s": AD_S}).json()
        httpx.put(
            f"{base}/v1/studies/{study['study_id']}/stimulus", files={"file": ("ad.webm", ad_clip(folder, AD_S))}
        ).raise_for_status()
        link = httpx.post(f"{base}/v1/studies/{study['study_id']}/links", json={"mode": "on-device"}).json()
        with sync_playwright() as playwright:
            flags = [*camera_flags(camera_file(folder)), "--autoplay-policy=no-user-gesture-required"]
            browser = launch(playwright, flags)
            page = browser.new_page()
            finished = []
            page.on("requestfinished", lambda request: finished.append(request))
            page.goto(f"{base}{link['url']}?viewer=bench-1")
            page.click("#consent")
            page.wait_for_selector("#continue:enabled", timeout=120_000)
            marks = page.evaluate(
                "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
            )
            page.click("#continue")
            page.wait_for_selector("#done:not([hidden])", timeout=(AD_S + 60) * 1000)
            sizes = [(request.url, request.method, request.sizes()) for request in finished]
            browser.close()
        (session,) = httpx.get(f"{base}/v1/studies/{study['study_id']}/sessions").json()["sessions"]
    downloaded = sum(s["responseBodySize"] for url, method, s in sizes if method == "GET" and "/stimulus" not in url)
    sent = sum(s["requestBodySize"] + s["requestHeadersSize"] for _, method, s in sizes if method == "POST")
    return {
        "ad_s": AD_S,
        "session_status": session["status"],
        "analysed_fps": round(session["analysed_fps"], 2),
        "step_ready_s": round(marks["step-opened"] / 1000, 2),
        "first_frame_s": round(marks["first-analysed-frame"] / 1000, 2),
        "downloaded_mb": round(downloaded / 1e6, 2),
        "sent_kb_per_min": round(sent / 1e3 * 60 / AD_S, 1),
        "posts": sum(method == "POST" for _, method, _ in sizes),
        "measured_at": time.strftime("%Y-%m-%d"),
    }
