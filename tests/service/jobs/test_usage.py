"""Usage per key on a live service: photos, faces, clips, jobs and streams are counted for the key that
sent them (GET /v1/usage), and the daily media quota refuses the next clip, clip job and stream."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.jobs.database import open_database
from service.jobs.usage import UsageMeter
from tests.helpers.clips import clip_bytes
from tests.helpers.jobs import PHOTO, job_settings, wait_for
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.postgres import postgres_server

A, B = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
CLIP = clip_bytes("asl-please.mp4")  # 2.43 s, one person
MEDIA_QUOTA_S = 2.0  # under one clip: the first clip of the day passes, the next is refused


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    settings = {"api_keys": "key-a,key-b", "quota_media_s_per_day": MEDIA_QUOTA_S, "quota_requests_per_s": 0}
    with running_service(**job_settings(tmp_path_factory.mktemp("usage"), **settings)) as live:
        yield live


def usage(base: str, key: dict, **query: str) -> httpx.Response:
    return httpx.get(f"{base}/v1/usage", params=query, headers=key)


def stream_frames(base: str, key: str, count: int) -> list[dict]:
    url = base.replace("http", "ws") + "/v1/stream"
    answers = []
    with connect(url, subprotocols=["emotion-stream", f"key.{key}"]) as ws:
        ws.send(json.dumps({"smoothing": 0}))
        for _ in range(count):
            ws.send(PHOTO)
            answers.append(json.loads(ws.recv(timeout=30)))
    return answers


def test_each_key_is_counted_for_what_it_used(service: LiveService) -> None:
    base = service.base
    assert len(stream_frames(base, "key-a", 3)) == 3
    for _ in range(2):  # two faces each
        assert httpx.post(f"{base}/v1/predict", files={"files": ("p.jpg", PHOTO)}, headers=A).status_code == 200
    clip = httpx.post(f"{base}/v1/video", files={"file": ("c.mp4", CLIP)}, headers=A, timeout=120)
    assert clip.status_code == 200
    job = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, headers={**A, "Idempotency-Key": "u-1"})
    replay = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, headers={**A, "Idempotency-Key": "u-1"})
    assert (job.status_code, replay.status_code) == (202, 200)
    wait_for(service, job.json()["job_id"], ("succeeded",), headers=A)

    report = usage(base, A).json()
    (today,) = report["days"]
    assert today["day"] == datetime.now(UTC).date().isoformat() and report["total"] == {
        k: v for k, v in today.items() if k != "day"
    }
    assert today["images"] == 3 and today["faces"] == 3 * 2 + len(clip.json()["tracks"])
    assert today["jobs"] == 1  # the replay is not a second job
    # The clip's length, and the stream's few analysed seconds (its frames came back to back).
    assert 2.4 <= today["media_seconds"] < 2.4 + 10
    assert today["requests"] >= 7 and today["study_sessions"] == 0
    other = usage(base, B).json()["total"]  # key B made only this request
    assert other == {**dict.fromkeys(other, 0), "requests": 1, "media_seconds": 0.0}


def test_the_daily_media_quota_refuses_the_next_clip_job_and_stream(service: LiveService) -> None:
    base = service.base
    first = httpx.post(f"{base}/v1/video", files={"file": ("c.mp4", CLIP)}, headers=B, timeout=120)
    assert first.status_code == 200  # below the quota when it began: it is finished
    refused = httpx.post(f"{base}/v1/video", files={"file": ("c.mp4", CLIP)}, headers=B, timeout=120)
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["code"] == "quota_media_s_per_day"
    assert "EMOTION_QUOTA_MEDIA_S_PER_DAY" in error["message"]
    until_midnight = (
        datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC) - datetime.now(UTC)
    ).total_seconds()
    assert abs(int(refused.headers["retry-after"]) - until_midnight) < 60
    job = httpx.post(f"{base}/v1/jobs", files={"file": ("c.mp4", CLIP)}, headers=B)
    assert job.status_code == 429 and job.json()["error"]["code"] == "quota_media_s_per_day"
    assert httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, headers=B).status_code == 202  # photos
    with pytest.raises(ConnectionClosed) as closed:
        stream_frames(base, "key-b", 1)
    assert closed.value.rcvd.code == 1013 and "EMOTION_QUOTA_MEDIA_S_PER_DAY" in closed.value.rcvd.reason
    metrics = httpx.get(f"{base}/metrics").text
    assert 'emotion_quota_refusals_total{key="' in metrics and 'limit="media_s_per_day"' in metrics


def test_a_range_is_checked(service: LiveService) -> None:
    today = datetime.now(UTC).date()
    tomorrow, year_ago = (today + timedelta(days=1)).isoformat(), (today - timedelta(days=366)).isoformat()
    assert usage(service.base, A, **{"from": tomorrow, "to": today.isoformat()}).status_code == 422
    assert usage(service.base, A, **{"from": year_ago}).status_code == 422
    assert usage(service.base, A, to="yesterday").status_code == 422
    assert usage(service.base, A, to="0").status_code == 422  # a date parser would read a Unix time
    assert usage(service.base, A, to="2026-02-30").status_code == 422
    assert usage(service.base, A, to="0001-01-01").json()["days"] == []  # the calendar's first day
    assert usage(service.base, A, **{"from": tomorrow, "to": tomorrow}).json()["days"] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_replicas_add_to_the_same_days_and_a_failed_flush_keeps_its_counts(backend: str, tmp_path) -> None:
    """Two meters (two replicas) on one database add up; counts a flush could not write are kept."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path}/jobs.db" if backend == "sqlite" else stack.enter_context(postgres_server())
        engine = open_database(url)
        first, second = UsageMeter(engine, 0), UsageMeter(engine, 0)
        first.add("key", requests=2, media_seconds=1.5)
        second.add("key", requests=1, faces=3)
        first.flush()
        second.flush()
        (day,) = first.days("key", date.min, date.max)
        assert (day.requests, day.faces, day.media_seconds) == (3, 3, 1.5)
        engine.dispose()
        broken = UsageMeter(open_database(f"sqlite:///{tmp_path}/other.db"), 0)
        broken.add("key", jobs=1)
        broken.sessions.configure(bind=create_engine("sqlite:////nonexistent/folder/jobs.db"))
        with pytest.raises(OperationalError):
            broken.flush()
        assert sum(counts["jobs"] for counts in broken.pending.values()) == 1
