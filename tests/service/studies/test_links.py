"""An ad test from one link, as a panel's respondents meet it: a real Chromium opens the link, consents,
passes the camera check with a fake webcam playing a synthetic viewer, watches the ad and is sent back
to the panel, and the session lands in the study with the planted smile where it was planted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.helpers.browser import CHROMIUM, launch, write_y4m
from tests.helpers.clips import clip_bytes
from tests.helpers.links import ad_clip, new_link, open_page, returned
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.viewers import screened_faces, wait_for_sessions
from training.scenes import background

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")

AD_S = 6
CAMERA_FPS = 10
CAMERA_S = 40  # longer than the check and the ad: the fake camera does not loop during a session
SMILE_S = (4, 6)  # seconds of the camera file in which the synthetic viewer smiles: in the ad for a lead-in of 0 to 5 s
SETTINGS = {
    "emotion_models": "emotion-fast",
    "default_emotion_model": "emotion-fast",
    "job_poll_s": 0.1,
    "link_secret": "a-link-secret-for-tests,an-older-one",
    "study_min_viewers": 1,
    "link_requests_per_min": 60,  # a page's own checks stay well under it; a flood does not
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    folder = tmp_path_factory.mktemp("links")
    settings = {**SETTINGS, "database_url": f"sqlite:///{folder / 'jobs.db'}", "media_store": str(folder / "media")}
    with running_service(**settings) as live:
        yield live


@pytest.fixture(scope="module")
def camera(service: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic viewer's webcam: a real neutral face, smiling (a real happy face) in SMILE_S."""
    neutral = screened_faces(service.base, "neutral", 1)[0]
    happy = screened_faces(service.base, "happy", 1)[0]
    canvas = background(240, 320, np.random.default_rng(5))
    frames = []
    for index in range(CAMERA_S * CAMERA_FPS):
        frame = canvas.copy()
        face = happy if SMILE_S[0] <= index / CAMERA_FPS < SMILE_S[1] else neutral
        frame[50:190, 90:230] = cv2.cvtColor(
            cv2.resize(face, (140, 140), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR
        )
        frames.append(frame)
    path = tmp_path_factory.mktemp("camera") / "viewer.y4m"
    write_y4m(frames, path, CAMERA_FPS)
    return path


@pytest.fixture(scope="module")
def study(service: LiveService, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = service.base
    study_id = httpx.post(f"{base}/v1/studies", json={"name": "link test", "stimulus_duration_s": AD_S}).json()[
        "study_id"
    ]
    folder = tmp_path_factory.mktemp("ad")
    kept = httpx.put(f"{base}/v1/studies/{study_id}/stimulus", files={"file": ("ad.webm", ad_clip(folder, AD_S))})
    assert kept.status_code == 200, kept.text
    assert kept.json() == {
        "duration_s": pytest.approx(AD_S, abs=0.2),
        "width": 320,
        "height": 240,
        "content_type": "video/webm",
    }
    return study_id


def test_a_respondent_consents_watches_and_lands_in_the_study_with_the_planted_smile(
    service: LiveService, study: str, camera: Path
) -> None:
    from playwright.sync_api import sync_playwright

    link = new_link(service.base, study)
    assert link["mode"] == "upload" and link["url"].startswith("/watch/")
    with sync_playwright() as playwright:
        browser, page = open_page(
            playwright, camera, f"{service.base}{link['url']}?viewer=r-001&a.age=25-34&a.market=uk"
        )
        page.click("#consent")
        page.wait_for_selector("#continue:enabled", timeout=30_000)
        page.click("#continue")
        assert returned(page) == {"rid": ["r-001"], "st": ["complete"]}
        browser.close()
    (session,) = wait_for_sessions(service.base, study)
    assert session["status"] == "analysed", (session["reason"], session)
    assert session["source"] == "link" and session["mode"] == "upload" and session["link_id"] == link["link_id"]
    assert session["attributes"] == {"age": "25-34", "market": "uk"} and session["visible_share"] == 1.0
    assert 0 < session["lead_in_s"] < 20 and 0 <= session["offset_s"] < 3
    # The camera file's time at stimulus second t is lead_in + offset + t: the smile lands there.
    shift = session["lead_in_s"] + session["offset_s"]
    expected = {t for t in range(AD_S) if SMILE_S[0] <= t + shift + 0.5 < SMILE_S[1]}
    report = httpx.get(f"{service.base}/v1/studies/{study}/report").json()
    smiling = {s["t"] for s in report["seconds"] if (s["emotions"]["happy"]["share"] or 0) == 1.0}
    assert smiling and expected, (smiling, shift)
    assert all(min(abs(t - e) for e in expected) <= 1 for t in smiling), (smiling, expected)
    assert all(min(abs(e - t) for t in smiling) <= 1 for e in expected), (smiling, expected)
    counts = httpx.get(f"{service.base}/v1/studies/{study}/links").json()["links"][0]
    assert counts["sessions"] == 1 and counts["opened"] == 1


def test_declining_records_nothing_and_returns_declined(service: LiveService, study: str, camera: Path) -> None:
    from playwright.sync_api import sync_playwright

    link = new_link(service.base, study)
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, camera, f"{service.base}{link['url']}?viewer=r-002")
        page.click("#decline")
        assert returned(page)["st"] == ["declined"]
        browser.close()
    links = httpx.get(f"{service.base}/v1/studies/{study}/links").json()["links"]
    declined = next(item for item in links if item["link_id"] == link["link_id"])
    assert (declined["declined"], declined["sessions"]) == (1, 0)
    viewers = [s["viewer"] for s in httpx.get(f"{service.base}/v1/studies/{study}/sessions").json()["sessions"]]
    assert "r-002" not in viewers


def test_the_same_viewer_again_is_told_so_and_makes_no_session(service: LiveService, study: str, camera: Path) -> None:
    from playwright.sync_api import sync_playwright

    link = new_link(service.base, study)
    before = httpx.get(f"{service.base}/v1/studies/{study}/sessions").json()["sessions"]
    assert any(s["viewer"] == "r-001" for s in before)
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, camera, f"{service.base}{link['url']}?viewer=r-001")
        assert "already taken part" in page.locator("#done-text").inner_text()
        assert returned(page)["st"] == ["screened_out"]
        browser.close()
    assert len(httpx.get(f"{service.base}/v1/studies/{study}/sessions").json()["sessions"]) == len(before)


def test_forged_revoked_and_expired_links_are_refused(service: LiveService, study: str) -> None:
    base = service.base
    link = new_link(base, study)
    token = link["url"].rsplit("/", 1)[1]
    payload, mac = token.split(".")
    forged = f"{payload}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
    assert httpx.get(f"{base}/watch/{forged}?viewer=x").status_code == 403
    assert httpx.get(f"{base}/watch/{forged}/stimulus").json()["error"]["code"] == "link_refused"
    assert httpx.get(f"{base}/watch/{token}/stimulus").status_code == 200
    assert httpx.delete(f"{base}/v1/studies/{study}/links/{link['link_id']}").status_code == 204
    page = httpx.get(f"{base}/watch/{token}?viewer=x")
    assert page.status_code == 403 and "withdrawn" in page.text
    expired = new_link(base, study, expires_in_h=1e-6)
    assert httpx.get(f"{base}{expired['url']}?viewer=x").status_code == 403
    # A token reaches its page's calls only: nothing else is routed under it.
    live = new_link(base, study)["url"]
    assert httpx.get(f"{base}{live}/report").status_code == 404
    assert httpx.get(f"{base}{live}/sessions").status_code == 405


def test_the_stimulus_is_checked_and_served_in_ranges(service: LiveService, study: str, tmp_path: Path) -> None:
    base = service.base
    other = httpx.post(f"{base}/v1/studies", json={"name": "short", "stimulus_duration_s": 10}).json()["study_id"]
    mismatch = httpx.put(f"{base}/v1/studies/{other}/stimulus", files={"file": ("ad.webm", ad_clip(tmp_path, AD_S))})
    assert mismatch.status_code == 409 and mismatch.json()["error"]["code"] == "stimulus_duration_mismatch"
    assert "6" in mismatch.json()["error"]["message"] and "10" in mismatch.json()["error"]["message"]
    assert httpx.post(f"{base}/v1/studies/{other}/links", json={}).json()["error"]["code"] == "no_stimulus"
    whole = httpx.get(f"{base}/v1/studies/{study}/stimulus")
    part = httpx.get(f"{base}/v1/studies/{study}/stimulus", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    tail = httpx.get(f"{base}/v1/studies/{study}/stimulus", headers={"Range": "bytes=-50"})
    assert tail.content == whole.content[-50:]
    beyond = httpx.get(f"{base}/v1/studies/{study}/stimulus", headers={"Range": f"bytes={len(whole.content)}-"})
    assert beyond.status_code == 416
    photo = httpx.put(f"{base}/v1/studies/{other}/stimulus", files={"file": ("c.mkv", b"not a clip at all")})
    assert photo.status_code == 415


def test_the_page_is_locked_down_and_a_flood_is_limited(service: LiveService, study: str) -> None:
    base = service.base
    link = new_link(base, study, max_sessions=1)
    page = httpx.get(f"{base}{link['url']}?viewer=r-9&a.market=%3C/script%3E%3Cscript%3Ealert(1)")
    assert page.status_code == 200
    headers = page.headers
    assert (
        "script-src 'self'" in headers["content-security-policy"]
        and "unsafe-inline" not in headers["content-security-policy"]
    )
    assert (
        headers["cross-origin-opener-policy"] == "same-origin"
        and headers["cross-origin-embedder-policy"] == "require-corp"
    )
    assert headers["referrer-policy"] == "no-referrer"
    assert "</script><script>" not in page.text  # the answer is data in the page, never markup
    assert httpx.get(f"{base}{link['url']}").status_code == 400  # no viewer id
    # A recording through the link: the upload mode's session, here without a browser.
    clip = {"file": ("c.mkv", clip_bytes("asl-thanks.mkv"))}
    form = {"viewer": "api-made", "offset_s": "0", "lead_in_s": "0", "visible_share": "1"}
    first = httpx.post(f"{base}{link['url']}/sessions", files=clip, data=form)
    assert first.status_code == 202, first.text
    full = httpx.post(f"{base}{link['url']}/sessions", files=clip, data={**form, "viewer": "another"})
    assert full.status_code == 409 and full.json()["error"]["code"] == "link_full"
    codes = [httpx.post(f"{base}{link['url']}/outcome", json={"status": "error"}) for _ in range(100)]
    refused = [c for c in codes if c.status_code == 429]  # a token comes back every second: count, not order
    assert [c.status_code for c in codes].count(204) < 80 and len(refused) > 20
    assert 1 <= int(refused[0].headers["retry-after"]) <= 60 and refused[0].json()["error"]["code"] == "rate_limited"
    other = new_link(base, study)["url"]  # another link is not slowed by this one's flood
    assert httpx.post(f"{base}{other}/outcome", json={"status": "error"}).status_code == 204


def test_the_studies_page_makes_a_study_uploads_the_ad_and_gives_its_link(service: LiveService, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ad = tmp_path / "ad.webm"
    ad.write_bytes(ad_clip(tmp_path, seconds=4))
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(f"{service.base}/studies")
        page.click("#ad-test summary")
        page.fill("#new-name", "from the page")
        page.set_input_files("#new-ad", str(ad))
        page.fill("#new-return", "https://panel.example/end?rid={viewer}&status={status}")
        page.select_option("#new-mode", "on-device-or-upload")
        page.click("#create-test")
        page.wait_for_selector("#link-line:not([hidden])", timeout=30_000)
        url = page.input_value("#link-url")
        browser.close()
    assert url.startswith(f"{service.base}/watch/") and url.endswith("?viewer={ID}")
    studies = httpx.get(f"{service.base}/v1/studies").json()["studies"]
    made = next(s for s in studies if s["name"] == "from the page")
    assert made["stimulus_duration_s"] == pytest.approx(4, abs=0.1)
    assert httpx.get(url.replace("{ID}", "r-77")).status_code == 200
    (link,) = httpx.get(f"{service.base}/v1/studies/{made['study_id']}/links").json()["links"]
    assert link["return_url"] == "https://panel.example/end?rid={viewer}&status={status}"
    assert link["mode"] == "on-device-or-upload"
