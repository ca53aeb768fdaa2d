"""Ad tests analysed in the viewer's own browser: a real Chromium opens an on-device link with a fake
webcam playing a real clip, runs the service's graphs itself and sends per-second traces only. Its
session must agree with the server's analysis of the same clip, and no image may leave the page."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import CHROMIUM
from tests.helpers.data import videos_dir
from tests.helpers.links import ad_clip, new_link, open_page, returned
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.viewers import wait_for_sessions

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")

AD_S = 6
TRACE_FIELDS = {
    "viewer",
    "attributes",
    "final",
    "model",
    "offset_s",
    "lead_in_s",
    "recording_s",
    "visible_share",
    "analysed_fps",
    "first_second",
    "seconds",
}
SETTINGS = {
    "emotion_models": "emotion-fast",
    "default_emotion_model": "emotion-fast",
    "job_poll_s": 0.1,
    "link_secret": "a-link-secret-for-tests",
    "study_min_viewers": 1,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("on-device")


@pytest.fixture(scope="module")
def service(folder: Path) -> Iterator[LiveService]:
    settings = {**SETTINGS, "database_url": f"sqlite:///{folder / 'jobs.db'}", "media_store": str(folder / "media")}
    with running_service(**settings) as live:
        yield live


@pytest.fixture(scope="module")
def camera(folder: Path) -> tuple[Path, Path]:
    """A real viewer turning his head, looped for a minute: as the fake webcam (y4m), and the same frames
    as a recording the server analyses (lossless H.264)."""
    y4m, twin = folder / "viewer.y4m", folder / "viewer.mkv"
    looped = ["-stream_loop", "11", "-i", str(videos_dir() / "one-person-head-pose.gif"), "-vf", "fps=12"]
    run = ["ffmpeg", "-loglevel", "error", "-y"]
    subprocess.run([*run, *looped, "-pix_fmt", "yuv420p", str(y4m)], check=True)
    subprocess.run([*run, "-i", str(y4m), "-c:v", "libx264", "-qp", "0", str(twin)], check=True)
    return y4m, twin


def new_study(base: str, folder: Path, name: str) -> str:
    study_id = httpx.post(f"{base}/v1/studies", json={"name": name, "stimulus_duration_s": AD_S}).json()["study_id"]
    kept = httpx.put(f"{base}/v1/studies/{study_id}/stimulus", files={"file": ("ad.webm", ad_clip(folder, AD_S))})
    assert kept.status_code == 200, kept.text
    return study_id


def watch(base: str, camera: Path, url: str) -> tuple[dict, list]:
    """Consent, pass the camera check, watch: (where the panel got the respondent back, with what the page
    told them as `said`; the page's requests and their answers' statuses)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_page(playwright, camera, f"{base}{url}")
        sent, answered = [], {}
        page.on("request", lambda request: sent.append((request.method, request.url, request.post_data_buffer)))
        page.on("response", lambda response: answered.setdefault(response.url.rsplit("/", 1)[1], response.status))
        page.click("#consent")
        page.wait_for_selector("#continue:enabled, #done:not([hidden])", timeout=60_000)
        if page.locator("#continue:enabled").count():
            page.click("#continue")
        page.wait_for_selector("#done:not([hidden])", timeout=90_000)
        said = page.locator("#done-text").inner_text()
        back = {**returned(page), "said": [said, str(answered)]}
        browser.close()
    return back, sent


@pytest.fixture(scope="module")
def on_device(service: LiveService, folder: Path, camera: tuple[Path, Path]) -> dict:
    study = new_study(service.base, folder, "on the device")
    link = new_link(service.base, study, mode="on-device")
    back, sent = watch(service.base, camera[0], f"{link['url']}?viewer=d-001&a.market=uk")
    media = sorted(p.relative_to(folder / "media").parts[0] for p in (folder / "media").rglob("*") if p.is_file())
    return {"study": study, "link": link, "back": back, "sent": sent, "media": media}


def viewer_rows(base: str, study: str) -> dict[str, dict]:
    """The study's viewers.csv: per viewer, presence, attention and each emotion's mean over their seconds."""
    lines = httpx.get(f"{base}/v1/studies/{study}/viewers.csv").text.strip().splitlines()
    header = lines[0].split(",")
    return {row["viewer"]: row for row in (dict(zip(header, line.split(","))) for line in lines[1:])}


def test_the_browser_analyses_the_viewer_and_agrees_with_the_server(
    service: LiveService, on_device: dict, camera: tuple[Path, Path]
) -> None:
    base, study = service.base, on_device["study"]
    assert on_device["back"]["st"] == ["complete"] and on_device["back"]["rid"] == ["d-001"], on_device["back"]
    (session,) = wait_for_sessions(base, study)
    assert session["status"] == "analysed", session
    assert session["mode"] == "on-device" and session["job_id"] is None and session["attributes"] == {"market": "uk"}
    assert session["analysed_fps"] >= 3 and session["visible_share"] == 1.0
    # The server analyses the same frames, from where the page's ad started in the camera's feed.
    offset = session["lead_in_s"] + session["offset_s"]
    form = {"viewer": "server-twin", "offset_s": f"{offset:.3f}"}
    twin = httpx.post(
        f"{base}/v1/studies/{study}/sessions", files={"file": ("v.mkv", camera[1].read_bytes())}, data=form
    )
    assert twin.status_code == 202, twin.text
    assert all(s["status"] == "analysed" for s in wait_for_sessions(base, study))
    rows = viewer_rows(base, study)
    ours, theirs = rows["d-001"], rows["server-twin"]
    means = [(float(ours[k]), float(theirs[k])) for k in ours if k.endswith("_mean")]
    assert max(abs(a - b) for a, b in means) <= 0.05, means
    assert abs(float(ours["presence"]) - float(theirs["presence"])) * AD_S <= 1.0, (ours, theirs)


def test_no_image_leaves_the_page(on_device: dict) -> None:
    """The page sent JSON traces and nothing else; the media store holds the ad alone."""
    posts = [(url, body) for method, url, body in on_device["sent"] if method != "GET"]
    assert posts and all(url.endswith("/traces") for url, _ in posts), [url for url, _ in posts]
    for _, body in posts:
        sent = json.loads(body)
        assert set(sent) <= TRACE_FIELDS and len(body) < 8_000
    assert not any(url.endswith("/face") for _, url, _ in on_device["sent"])
    assert on_device["media"] == ["stimuli"]
    final = json.loads(posts[-1][1])
    assert final["final"] and len(final["seconds"]) == AD_S and len(posts) >= 2  # progress, then the final post


def trace_body(seconds: int, final: bool) -> dict:
    """What a page sends: every second with its face found in 6 of 8 frames, fairly happy, facing the screen."""
    second = {
        "analysed": 8,
        "faces": 6,
        "probabilities": [0.05, 0.0, 0.05, 0.6, 0.1, 0.1, 0.1],
        "yaw_deg": 4.0,
        "pitch_deg": 3.0,
    }
    body = {
        "viewer": "api-1",
        "final": final,
        "model": {"name": "emotion-fast", "version": "3"},
        "offset_s": 0.8,
        "lead_in_s": 2.0,
        "recording_s": 0.8 + AD_S + 0.6,
        "visible_share": 1.0,
        "analysed_fps": 8.0,
        "seconds": [dict(second) for _ in range(seconds)],
    }
    return body


def test_the_service_checks_what_a_page_sends(service: LiveService, folder: Path) -> None:
    base = service.base
    study = new_study(base, folder, "checked traces")
    url = f"{base}{new_link(base, study, mode='on-device')['url']}"
    described = httpx.get(f"{url}/models/emotion-fast/browser").json()
    graph = httpx.get(f"{base}{described['graph']}")
    assert hashlib.sha256(graph.content).hexdigest() == described["sha256"]
    assert graph.headers["cross-origin-resource-policy"] == "same-origin"
    assert httpx.get(f"{url}/models/detector/browser").json()["detector"]["score_threshold"] == 0.6
    assert httpx.get(f"{url}/models/emotion/browser").status_code == 404  # only what the page runs

    def refused(body: dict) -> str:
        answer = httpx.post(f"{url}/traces", json=body)
        assert answer.status_code == 422, answer.text
        return answer.json()["error"]["message"]

    good = trace_body(AD_S, True)
    assert "sum to 1" in refused({**good, "seconds": [{**good["seconds"][0], "probabilities": [0.5] * 7}] * AD_S})
    assert "exceed" in refused({**good, "seconds": [{**good["seconds"][0], "faces": 9}] * AD_S})
    assert "emotion-fast/3" in refused({**good, "model": {"name": "emotion-fast", "version": "2"}})
    assert "6 seconds" in refused({**good, "seconds": good["seconds"] * 2})
    assert "6 seconds" in refused({**good, "seconds": good["seconds"][:3]})  # a final post covers the ad
    short = {**good["seconds"][0], "probabilities": [0.5, 0.5]}
    assert "7 probabilities" in refused({**good, "seconds": [short] * AD_S})
    # Progress while the ad plays, then the final post: one session, judged once.
    progress = httpx.post(f"{url}/traces", json=trace_body(3, False))
    assert progress.status_code == 202 and progress.json()["status"] == "receiving"
    more = httpx.post(f"{url}/traces", json={**trace_body(2, False), "first_second": 3})  # the seconds since
    assert more.status_code == 202 and more.json()["session_id"] == progress.json()["session_id"]
    assert "seconds 5 to 6" in refused({**trace_body(2, False), "first_second": 5})
    assert "a final post sends them all" in refused({**trace_body(3, True), "first_second": 3})
    final = httpx.post(f"{url}/traces", json=good)
    assert final.status_code == 202 and final.json()["session_id"] == progress.json()["session_id"]
    (session,) = httpx.get(f"{base}/v1/studies/{study}/sessions").json()["sessions"]
    assert (session["status"], session["mode"], session["analysed_fps"]) == ("analysed", "on-device", 8.0)
    report = httpx.get(f"{base}/v1/studies/{study}/report").json()
    assert report["seconds"][0]["emotions"]["happy"]["mean"] == pytest.approx(0.6)
    again = httpx.post(f"{url}/traces", json=good)
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_viewer"
    slow = httpx.post(f"{url}/traces", json={**good, "viewer": "api-2", "analysed_fps": 2.0})
    assert slow.json()["status"] == "excluded"
    sessions = httpx.get(f"{base}/v1/studies/{study}/sessions").json()["sessions"]
    assert "2.0 frames a second (minimum 3)" in sessions[1]["reason"]
    # Each mode takes what it analyses: recordings on upload links, traces on on-device ones.
    clip = {"file": ("c.mkv", b"\x1a\x45\xdf\xa3")}
    form = {"viewer": "x", "offset_s": "0", "lead_in_s": "0", "visible_share": "1"}
    assert httpx.post(f"{url}/sessions", files=clip, data=form).json()["error"]["code"] == "wrong_mode"
    upload = f"{base}{new_link(base, study)['url']}"
    assert httpx.post(f"{upload}/traces", json=good).json()["error"]["code"] == "wrong_mode"
    assert httpx.get(f"{upload}/models/detector/browser").status_code == 404


@pytest.fixture(scope="module")
def slow_service(folder: Path) -> Iterator[LiveService]:
    """A service that asks more of a browser than any can give: every device is too slow."""
    settings = {
        **SETTINGS,
        "database_url": f"sqlite:///{folder / 'slow.db'}",
        "media_store": str(folder / "slow-media"),
        "link_min_device_fps": 30,
    }
    with running_service(**settings) as live:
        yield live


def test_a_device_too_slow_falls_back_to_an_upload_where_the_link_allows(
    slow_service: LiveService, folder: Path, camera: tuple[Path, Path]
) -> None:
    base = slow_service.base
    study = new_study(base, folder, "slow devices")
    strict = new_link(base, study, mode="on-device")
    back, sent = watch(base, camera[0], f"{strict['url']}?viewer=s-1")
    assert back["st"] == ["error"] and "quickly enough" in back["said"][0], back
    assert not any(method == "POST" and "/face" in url for method, url, _ in sent)
    either = new_link(base, study, mode="on-device-or-upload")
    back, _ = watch(base, camera[0], f"{either['url']}?viewer=s-2")
    assert back["st"] == ["complete"], back
    (session,) = wait_for_sessions(base, study)
    assert (session["viewer"], session["mode"], session["status"]) == ("s-2", "upload", "analysed")
    links = {item["link_id"]: item for item in httpx.get(f"{base}/v1/studies/{study}/links").json()["links"]}
    assert links[strict["link_id"]]["errors"] == 1 and links[either["link_id"]]["sessions"] == 1
