"""Audience studies end to end on a real service: synthetic viewers with a planted truth (real
FER-2013 faces), the shared real clips as sessions, comparisons, restarts, and refusals."""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from service.studies.export import cell
from tests.helpers.browser import CHROMIUM_FLAGS
from tests.helpers.clips import clip_bytes
from tests.helpers.data import videos_dir
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.postgres import postgres_server
from tests.helpers.viewers import LEFT, SMILE, planted_viewers, run_study, screened_faces, wait_for_sessions

FAST = {"emotion_models": "emotion-fast", "default_emotion_model": "emotion-fast", "job_poll_s": 0.1}
EXCLUDED = {21: "face found in 30%", 22: "the recording ends 4.0 s before"}


def settings_for(folder: Path, database_url: str | None = None) -> dict:
    return {
        "database_url": database_url or f"sqlite:///{folder / 'jobs.db'}",
        "media_store": str(folder / "media"),
        **FAST,
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studies")


@pytest.fixture(scope="module")
def service(folder: Path) -> Iterator[LiveService]:
    with running_service(**settings_for(folder)) as live:
        yield live


@pytest.fixture(scope="module")
def faces(service: LiveService) -> dict[str, list[np.ndarray]]:
    return {"happy": screened_faces(service.base, "happy", 36), "neutral": screened_faces(service.base, "neutral", 60)}


@pytest.fixture(scope="module")
def planted(service: LiveService, faces: dict, folder: Path) -> str:
    return run_study(service.base, planted_viewers(faces, smiling=18), folder, "ad-a")


def test_the_report_finds_the_planted_moment_share_exclusions_and_attention_drop(
    service: LiveService, planted: str, folder: Path
) -> None:
    report = httpx.get(f"{service.base}/v1/studies/{planted}/report").json()
    sessions = report["sessions"]
    assert (sessions["uploaded"], sessions["analysed"], sessions["valid"]) == (30, 30, 28)
    reasons = sorted(e["reason"] for e in sessions["excluded"])
    assert reasons[0].startswith(EXCLUDED[21]) and reasons[1].startswith(EXCLUDED[22])
    best = report["best_moment"]
    assert best["emotion"] == "happy" and SMILE[0] - 1 <= best["t"] <= SMILE[1]
    planted_share = 18 / 28
    for t in range(*SMILE):
        low, high = report["seconds"][t]["emotions"]["happy"]["share_ci"]
        assert low <= planted_share <= high
    assert all(s["emotions"]["happy"]["share"] < 0.1 for s in report["seconds"] if not SMILE[0] <= s["t"] < SMILE[1])
    assert (
        report["summary"]["happy"]["ever_share_ci"][0]
        <= planted_share
        <= report["summary"]["happy"]["ever_share_ci"][1]
    )
    drop = report["attention_drop"]
    assert drop["t"] == LEFT[0] and drop["before"] - drop["after"] >= 2 / 28
    assert [s["n"] for s in report["seconds"]][LEFT[0]] <= 25
    assert report["models"]["emotion"]["name"] == "emotion-fast" and report["figures_version"]
    assert {"face_landmarks", "face_blendshapes"} <= set(report["models"])
    # The face mesh's smile, which never saw the emotion model's output, finds the same moment.
    smiles = {s["t"]: s["actions"]["smile_share"] for s in report["seconds"]}
    assert report["actions"]["viewers"] == 28 and SMILE[0] <= report["actions"]["smile_peak"]["t"] < SMILE[1]
    assert all(share < 0.1 for t, share in smiles.items() if not SMILE[0] <= t < SMILE[1])
    # Only traces are kept: every recording was deleted when its job ended.
    assert not any(path.is_file() for path in (folder / "media").rglob("*"))


def test_the_report_as_csv_picture_and_viewers(service: LiveService, planted: str) -> None:
    rows = list(csv.DictReader(io.StringIO(httpx.get(f"{service.base}/v1/studies/{planted}/report.csv").text)))
    assert [int(r["t"]) for r in rows] == list(range(10)) and float(rows[5]["happy_share"]) > 0.5
    viewers = list(csv.DictReader(io.StringIO(httpx.get(f"{service.base}/v1/studies/{planted}/viewers.csv").text)))
    assert len(viewers) == 30 and sum(v["status"] == "excluded" for v in viewers) == 2
    assert sum(v["happy_reached"] == "1" for v in viewers if v["status"] == "analysed") >= 16
    picture = httpx.get(f"{service.base}/v1/studies/{planted}/report.png")
    assert picture.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR).shape == (760, 1200, 3)


def test_compare_finds_the_planted_difference_where_it_was_planted(
    service: LiveService, planted: str, faces: dict, folder: Path
) -> None:
    fewer = run_study(service.base, planted_viewers(faces, smiling=6), folder, "ad-b", seed=100)
    comparison = httpx.get(f"{service.base}/v1/studies/compare", params={"a": planted, "b": fewer}).json()
    happy = comparison["emotions"]["happy"]
    assert happy["ever_share_difference"] > 0.25 and happy["ever_share_ci"][0] > 0 and happy["ever_share_p"] < 0.01
    assert happy["mean_difference"] > 0 and happy["mean_ci"][0] > 0 and happy["mean_p"] < 0.05
    assert {d["t"] for d in happy["differing_seconds"]} <= set(range(*SMILE)) and happy["differing_seconds"]
    for emotion, figures in comparison["emotions"].items():
        assert {d["t"] for d in figures["differing_seconds"]} <= set(range(*SMILE)), emotion
    actions = comparison["actions"]
    assert actions["smile_ever_share_difference"] > 0.15
    assert actions["expressiveness"]["difference"] > 0 and actions["expressiveness"]["p"] < 0.05
    assert {d["t"] for d in actions["smile_differing_seconds"]} <= set(range(*SMILE))


def test_two_studies_from_the_same_truth_do_not_differ(
    service: LiveService, planted: str, faces: dict, folder: Path
) -> None:
    other_people = {"happy": faces["happy"][18:], "neutral": faces["neutral"][30:]}
    again = run_study(service.base, planted_viewers(other_people, smiling=18), folder, "ad-a-again", seed=200)
    comparison = httpx.get(f"{service.base}/v1/studies/compare", params={"a": planted, "b": again}).json()
    assert comparison["emotions"]["happy"]["differing_seconds"] == []
    assert comparison["emotions"]["happy"]["ever_share_p"] > 0.05


def test_real_clips_as_sessions_count_each_viewer_once(service: LiveService) -> None:
    clips = ["asl-thanks.mkv", "asl-please.mp4", "two-people-head-pose.webm"]
    durations = []
    for name in clips:
        capture = cv2.VideoCapture(str(videos_dir() / name))
        durations.append(capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(cv2.CAP_PROP_FPS))
    stimulus = max(1, int(min(durations)))
    study_id = httpx.post(f"{service.base}/v1/studies", json={"name": "real", "stimulus_duration_s": stimulus}).json()[
        "study_id"
    ]
    for name in clips:
        sent = httpx.post(f"{service.base}/v1/studies/{study_id}/sessions", files={"file": (name, clip_bytes(name))})
        assert sent.status_code == 202, sent.text
    sessions = wait_for_sessions(service.base, study_id)
    assert [s["status"] for s in sessions] == ["analysed"] * 3, sessions
    report = httpx.get(f"{service.base}/v1/studies/{study_id}/report").json()
    assert report["sessions"]["valid"] == 3
    assert all(second["n"] <= 3 for second in report["seconds"]) and max(s["n"] for s in report["seconds"]) == 3
    assert report["actions"]["viewers"] == 3 and all(s["actions"]["n"] <= 3 for s in report["seconds"])


def test_a_report_after_a_restart_is_identical(service: LiveService, planted: str, folder: Path) -> None:
    before = httpx.get(f"{service.base}/v1/studies/{planted}/report", params={"threshold": 0.4}).json()
    with running_service(**settings_for(folder)) as restarted:
        after = httpx.get(f"{restarted.base}/v1/studies/{planted}/report", params={"threshold": 0.4}).json()
    assert after == before


def test_refusals_are_clear(service: LiveService, planted: str) -> None:
    base = service.base
    assert httpx.get(f"{base}/v1/studies/nope/report").status_code == 404
    late_event = {"name": "x", "stimulus_duration_s": 5, "events": [{"time_s": 9, "label": "late"}]}
    assert httpx.post(f"{base}/v1/studies", json=late_event).json()["error"]["code"] == "invalid_request"
    photo = jpeg(fer_faces("happy", 1)[0])
    refused = httpx.post(f"{base}/v1/studies/{planted}/sessions", files={"file": ("p.jpg", photo)})
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "unsupported_type"
    other_model = httpx.post(
        f"{base}/v1/studies/{planted}/sessions",
        files={"file": ("c.mkv", clip_bytes("asl-thanks.mkv"))},
        data={"model": "emotion"},
    )
    assert other_model.status_code == 409 and other_model.json()["error"]["code"] == "study_model_pinned"
    assert httpx.get(f"{base}/v1/studies/{planted}/report", params={"threshold": 2}).status_code == 422
    assert httpx.get(f"{base}/v1/studies/compare", params={"a": planted, "b": "nope"}).status_code == 404


def test_deleting_a_study_deletes_every_trace(service: LiveService, faces: dict, folder: Path) -> None:
    study_id = run_study(service.base, planted_viewers(faces, smiling=1)[:2], folder, "short-lived")
    assert httpx.delete(f"{service.base}/v1/studies/{study_id}").status_code == 204
    assert httpx.get(f"{service.base}/v1/studies/{study_id}/sessions").status_code == 404
    assert study_id not in {s["study_id"] for s in httpx.get(f"{service.base}/v1/studies").json()["studies"]}


def test_traces_in_postgresql(faces: dict, tmp_path: Path) -> None:
    with postgres_server() as url, running_service(**settings_for(tmp_path, url)) as live:
        study_id = run_study(live.base, planted_viewers(faces, smiling=3)[:4], tmp_path, "pg")
        report = httpx.get(f"{live.base}/v1/studies/{study_id}/report").json()
    assert report["sessions"]["valid"] == 4
    smiled = [s["emotions"]["happy"]["share"] for s in report["seconds"][SMILE[0] : SMILE[1]]]
    assert max(smiled) >= 0.5  # three of the four smile, read back from PostgreSQL
    # Four viewers are too few to name a moment: a second needs ten faces (or 30% of the viewers).
    assert report["best_moment"] is None and "at least 10 viewers" in report["best_moment_reason"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (Debian package chromium)")
def test_the_studies_page_shows_the_report_sessions_and_a_comparison(service: LiveService, planted: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{service.base}/studies/{planted}")
        page.wait_for_selector("#sessions tr >> nth=30", timeout=20_000)
        assert page.locator("#sessions tr").count() == 31  # a header and every session
        assert page.locator("#sessions td", has_text="excluded").count() == 2
        assert re.search(
            r"At 0:0[5-7](–0:0[5-7])?, [\d.]+% of viewers smiled \(95%: ", page.locator("#best").inner_text()
        )
        assert re.search(r"face mesh\), [\d.]+% of 28 recorded viewers smiled", page.locator("#best").inner_text())
        # The chart is drawn: the happy curve's colour is on the canvas around the best moment.
        happy_pixels = page.evaluate(
            """() => { const c = document.getElementById('chart'); const d = c.getContext('2d')
                 .getImageData(0, 0, c.width, c.height).data; let n = 0;
                 for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 1] === 200 && d[i + 2] === 0) n++;
                 return n; }"""
        )
        assert happy_pixels > 100
        others = page.locator("#other option").all_inner_texts()
        assert len(others) >= 3
        page.select_option("#other", index=2)
        page.click("#compare")
        page.wait_for_selector("#comparison-table tr >> nth=7", timeout=20_000)
        assert page.locator("#comparison-table tr").count() == 8
        assert re.match(
            r"\d+ viewers against \d+, over the first \d+ s", page.locator("#comparison-viewers").inner_text()
        )
        verdicts = page.locator("#comparison-verdicts li").all_inner_texts()
        assert len(verdicts) == 7 and all(re.match(r"\w+: \d+ of \d+ viewers of a reached it", v) for v in verdicts)
        browser.close()


def test_a_study_without_sessions_reports_nothing_yet(service: LiveService) -> None:
    study_id = httpx.post(f"{service.base}/v1/studies", json={"name": "new", "stimulus_duration_s": 3}).json()[
        "study_id"
    ]
    report = httpx.get(f"{service.base}/v1/studies/{study_id}/report").json()
    assert report["sessions"] == {"uploaded": 0, "analysed": 0, "valid": 0, "excluded": []}
    assert [s["n"] for s in report["seconds"]] == [0, 0, 0] and report["best_moment"] is None
    assert httpx.get(f"{service.base}/v1/studies/{study_id}/report.png").status_code == 200
    assert len(httpx.get(f"{service.base}/v1/studies/{study_id}/report.csv").text.splitlines()) == 4


def test_study_bodies_are_strict_and_bounded_by_the_longest_clip(service: LiveService) -> None:
    base = service.base
    for body in (
        {"name": "long", "stimulus_duration_s": 601},  # longer than any recording may be
        {"name": "bool", "stimulus_duration_s": True},
        {"name": "text", "stimulus_duration_s": "30"},
        {"name": "event", "stimulus_duration_s": 30, "events": [{"time_s": False, "label": "x"}]},
    ):
        answer = httpx.post(f"{base}/v1/studies", json=body)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request", body


def test_an_empty_study_at_the_longest_length_reports_cheaply(service: LiveService) -> None:
    """Six reports of an empty 600 s study at once: nothing to resample, so no memory to speak of; photos
    are answered meanwhile."""
    study_id = httpx.post(f"{service.base}/v1/studies", json={"name": "empty", "stimulus_duration_s": 600}).json()[
        "study_id"
    ]
    before = service.rss_mb()
    with ThreadPoolExecutor(7) as pool:
        routes = ["report", "report.csv", "report.png", "report?threshold=0.3", "report?threshold=0.4", "viewers.csv"]
        reports = [pool.submit(httpx.get, f"{service.base}/v1/studies/{study_id}/{r}", timeout=60) for r in routes]
        photo = pool.submit(
            httpx.post, f"{service.base}/v1/predict", files={"files": ("p.jpg", jpeg(fer_faces("happy", 1)[0]))}
        )
        assert photo.result().status_code == 200
        assert [r.result().status_code for r in reports] == [200] * 6
    assert service.rss_mb() - before < 150
    # Nothing to compare it with yet: a clear 409, not "models differ".
    refused = httpx.get(f"{service.base}/v1/studies/compare", params={"a": study_id, "b": study_id})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "empty_study"


def test_lists_are_paged_with_cursors(service: LiveService, planted: str) -> None:
    base = service.base
    for i in range(12):
        httpx.post(f"{base}/v1/studies", json={"name": f"paged-{i}", "stimulus_duration_s": 5})
    everything = httpx.get(f"{base}/v1/studies", params={"limit": 100}).json()["studies"]
    pages, cursor = [], None
    while True:
        page = httpx.get(f"{base}/v1/studies", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(page["studies"])
        if not (cursor := page["next_cursor"]):
            break
    assert all(len(p) == 5 for p in pages[:-1]) and [s for p in pages for s in p] == everything
    sessions = httpx.get(f"{base}/v1/studies/{planted}/sessions").json()["sessions"]
    first = httpx.get(f"{base}/v1/studies/{planted}/sessions", params={"limit": 20}).json()
    rest = httpx.get(f"{base}/v1/studies/{planted}/sessions", params={"cursor": first["next_cursor"]}).json()
    assert first["sessions"] + rest["sessions"] == sessions and rest["next_cursor"] is None
    assert httpx.get(f"{base}/v1/studies", params={"cursor": "bm90IG91cnM="}).status_code == 422


def test_a_replayed_session_answers_its_real_state(service: LiveService) -> None:
    base = service.base
    study_id = httpx.post(f"{base}/v1/studies", json={"name": "replay", "stimulus_duration_s": 3}).json()["study_id"]

    def send() -> httpx.Response:
        clip = clip_bytes("asl-thanks.mkv")
        return httpx.post(
            f"{base}/v1/studies/{study_id}/sessions",
            files={"file": ("c.mkv", clip)},
            data={"viewer": "viewer-7"},
            headers={"Idempotency-Key": "viewer-7-try"},
        )

    first = send()
    assert first.status_code == 202 and first.json()["status"] == "queued"
    (session,) = wait_for_sessions(base, study_id)
    again = send()
    assert again.status_code == 200 and again.json()["session_id"] == first.json()["session_id"]
    assert again.json()["status"] == session["status"] != "queued"


def test_csv_cells_that_a_spreadsheet_would_run_are_made_inert() -> None:
    for text in ("=1+1", " =1+1", "\u3000=1", "\uff1dSUM(A1)", "\uff0b1", "@cmd", "\t-2"):
        assert cell(text) == "'" + text
    assert cell("viewer 17") == "viewer 17" and cell(0.5) == 0.5


def test_a_viewer_counts_once_and_one_session_can_be_erased(service: LiveService) -> None:
    base = service.base
    study_id = httpx.post(f"{base}/v1/studies", json={"name": "erasure", "stimulus_duration_s": 3}).json()["study_id"]

    def send(viewer: str) -> httpx.Response:
        clip = clip_bytes("asl-thanks.mkv")
        return httpx.post(
            f"{base}/v1/studies/{study_id}/sessions", files={"file": ("c.mkv", clip)}, data={"viewer": viewer}
        )

    first, second = send("p1"), send("p2")
    assert first.status_code == second.status_code == 202
    again = send("p1")  # the same viewer uploaded twice would count twice
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_viewer"
    wait_for_sessions(base, study_id)
    erased = first.json()["session_id"]
    assert httpx.delete(f"{base}/v1/studies/{study_id}/sessions/{erased}").status_code == 204
    sessions = httpx.get(f"{base}/v1/studies/{study_id}/sessions").json()["sessions"]
    assert [s["viewer"] for s in sessions] == ["p2"]
    assert httpx.get(f"{base}/v1/studies/{study_id}/report").json()["sessions"]["uploaded"] == 1
    assert httpx.delete(f"{base}/v1/studies/{study_id}/sessions/{erased}").status_code == 404
    other = httpx.post(f"{base}/v1/studies", json={"name": "other", "stimulus_duration_s": 3}).json()["study_id"]
    kept = second.json()["session_id"]
    assert httpx.delete(f"{base}/v1/studies/{other}/sessions/{kept}").status_code == 404  # not that study's
    assert send("p1").status_code == 202  # erased, the viewer may take part again
