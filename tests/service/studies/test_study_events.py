"""A study as an agency runs it: respondents' own answers on each session, segments with a privacy floor,
norms, and signed study events to a real receiver, on real clips through a running service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.helpers.clips import clip_bytes
from tests.helpers.jobs import SECRET, eventually, job_settings
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.viewers import wait_for_sessions
from tests.helpers.webhook_receiver import Receiver, webhook_receiver

CLIPS = {"asl-thanks.mkv": "uk", "asl-please.mp4": "uk", "two-people-head-pose.webm": "de"}
STIMULUS_S = 2


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiving:
        yield receiving


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    folder: Path = tmp_path_factory.mktemp("study-events")
    with running_service(**job_settings(folder, study_segment_min_viewers=2)) as live:
        yield live


@pytest.fixture(scope="module")
def study(service: LiveService, receiver: Receiver) -> str:
    body = {
        "name": "launch",
        "stimulus_duration_s": STIMULUS_S,
        "category": "demo",
        "callback_url": receiver.url,
        "target_sessions": 2,
    }
    created = httpx.post(f"{service.base}/v1/studies", json=body)
    assert created.status_code == 201, created.text
    study_id = created.json()["study_id"]
    for index, (name, market) in enumerate(CLIPS.items()):
        answers = json.dumps({"market": market, "age": "25-34"})
        sent = httpx.post(
            f"{service.base}/v1/studies/{study_id}/sessions",
            files={"file": (name, clip_bytes(name))},
            data={"viewer": f"r{index}", "attributes": answers},
        )
        assert sent.status_code == 202, sent.text
    assert [s["status"] for s in wait_for_sessions(service.base, study_id)] == ["analysed"] * 3
    return study_id


def events(receiver: Receiver) -> list[dict]:
    """Every delivery, its signature checked by the reference verifier (which raises on a bad one)."""
    return [Webhook(SECRET).verify(d.body, d.headers) for d in receiver.deliveries]


def test_each_analysed_session_and_the_ready_study_send_one_signed_event(
    service: LiveService, study: str, receiver: Receiver
) -> None:
    assert eventually(lambda: len(receiver.deliveries) >= 4, timeout_s=30)
    received = events(receiver)
    types = [e["type"] for e in received]
    assert sorted(types) == [
        "study.ready",
        "study.session.analysed",
        "study.session.analysed",
        "study.session.analysed",
    ]
    analysed = [e["data"] for e in received if e["type"] == "study.session.analysed"]
    assert {a["viewer"] for a in analysed} == {"r0", "r1", "r2"} and {a["status"] for a in analysed} == {"analysed"}
    (ready,) = [e for e in received if e["type"] == "study.ready"]
    assert ready["data"]["study_id"] == study and ready["data"]["target_sessions"] == 2
    assert ready["data"]["valid_sessions"] >= 2 and ready["timestamp"].endswith("+00:00")
    assert httpx.get(f"{service.base}/v1/studies/{study}").json()["ready_at"] is not None
    jobs = httpx.get(f"{service.base}/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert jobs == []  # the sessions' analyses are listed only when asked for; the events are not jobs
    assert len(httpx.get(f"{service.base}/v1/jobs", params={"kind": "session"}).json()["jobs"]) == 3
    assert httpx.get(f"{service.base}/v1/jobs", params={"kind": "video"}).json()["jobs"] == []
    assert httpx.get(f"{service.base}/v1/jobs", params={"kind": "event"}).status_code == 422


def test_sessions_keep_the_respondents_own_answers(service: LiveService, study: str) -> None:
    sessions = httpx.get(f"{service.base}/v1/studies/{study}/sessions").json()["sessions"]
    assert [s["attributes"] for s in sessions] == [{"market": m, "age": "25-34"} for m in CLIPS.values()]


def test_segments_report_only_groups_above_the_privacy_floor(service: LiveService, study: str) -> None:
    base = f"{service.base}/v1/studies/{study}"
    uk = httpx.get(f"{base}/report", params={"segment": "market:uk"})
    assert uk.status_code == 200 and uk.json()["sessions"]["valid"] == 2 and uk.json()["segment"] == "market:uk"
    de = httpx.get(f"{base}/report.csv", params={"segment": "market:de"})
    assert de.status_code == 409 and de.json()["error"]["code"] == "segment_too_small"
    split = httpx.get(f"{base}/segments", params={"by": "market"}).json()
    assert [(s["value"], s["viewers"], s["report"] is not None) for s in split["segments"]] == [
        ("uk", 2, True),
        ("de", 1, False),
    ]
    assert split["comparisons"] == [] and split["min_viewers"] == 2
    everyone = httpx.get(f"{base}/segments", params={"by": "age"}).json()["segments"]
    assert [(s["value"], s["viewers"]) for s in everyone] == [("25-34", 3)]
    assert httpx.get(f"{base}/segments", params={"by": "no spaces"}).status_code == 422
    assert httpx.get(f"{base}/report", params={"segment": "market"}).status_code == 422


def test_norms_wait_for_enough_studies_in_the_category(service: LiveService, study: str) -> None:
    norms = httpx.get(f"{service.base}/v1/studies/{study}/norms").json()
    assert norms["category"] == "demo" and norms["studies"] == 0 and "need 5 other studies" in norms["note"]
    assert norms["metrics"]["attention"]["value"] is not None and norms["metrics"]["attention"]["percentile"] is None


@pytest.mark.parametrize(
    "answers",
    ['{"market uk": "x"}', '["uk"]', '{"market": 5}', '{"market": ""}', json.dumps({f"k{i}": "v" for i in range(17)})],
)
def test_malformed_answers_are_refused_before_the_upload_is_kept(
    service: LiveService, study: str, answers: str
) -> None:
    sent = httpx.post(
        f"{service.base}/v1/studies/{study}/sessions",
        files={"file": ("c.mkv", clip_bytes("asl-thanks.mkv"))},
        data={"viewer": "late", "attributes": answers},
    )
    assert sent.status_code == 422 and sent.json()["error"]["message"].startswith("attributes"), sent.text
