"""Per-key quotas on a live service with two keys: each key is refused with 429 at its own limits,
naming the limit, while the other key goes on; a replay is answered whatever the quota."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.clips import clip_bytes
from tests.helpers.jobs import PHOTO, job_settings
from tests.helpers.live_service import LiveService, running_service

A, B = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    quotas = {
        "api_keys": "key-a,key-b",
        "job_workers": 0,  # jobs stay queued: the quota counts them
        "quota_requests_per_s": 5,
        "quota_queued_jobs": 2,
        "quota_stored_bytes": 2 * len(PHOTO) + 1000,
    }
    with running_service(**job_settings(tmp_path_factory.mktemp("quotas"), **quotas)) as live:
        yield live


def submit(base: str, key: dict, data: bytes, name: str = "p.jpg", **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/jobs", files={"file": (name, data)}, headers={**key, **headers})


def test_queued_jobs_and_their_bytes_are_limited_per_key(service: LiveService) -> None:
    base = service.base
    first = submit(base, A, PHOTO, **{"Idempotency-Key": "a-1"})
    assert first.status_code == 202 and submit(base, A, PHOTO).status_code == 202
    third = submit(base, A, PHOTO)
    assert third.status_code == 429 and third.headers["retry-after"] == "30"
    assert third.json()["error"]["code"] == "quota_queued_jobs"
    assert "EMOTION_QUOTA_QUEUED_JOBS" in third.json()["error"]["message"]
    replay = submit(base, A, PHOTO, **{"Idempotency-Key": "a-1"})  # the job exists: no new use
    assert replay.status_code == 200 and replay.json()["job_id"] == first.json()["job_id"]
    # The other key has its own room: a photo fits, a clip would pass its bytes.
    assert submit(base, B, PHOTO).status_code == 202
    big = submit(base, B, clip_bytes("asl-thanks.mkv"), name="c.mkv")
    assert big.status_code == 429 and big.json()["error"]["code"] == "quota_stored_bytes"
    # Room comes back as jobs end.
    httpx.delete(f"{base}/v1/jobs/{first.json()['job_id']}", headers=A)
    assert submit(base, A, PHOTO).status_code == 202


def test_requests_a_second_are_limited_per_key_and_counted(service: LiveService) -> None:
    base = service.base
    answers = [httpx.get(f"{base}/v1/jobs", headers=A) for _ in range(40)]
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) > 10 and [a.status_code for a in answers].count(200) >= 10
    assert refused[0].json()["error"]["code"] == "rate_limited" and int(refused[0].headers["retry-after"]) >= 1
    assert "EMOTION_QUOTA_REQUESTS_PER_S" in refused[0].json()["error"]["message"]
    assert httpx.get(f"{base}/v1/jobs", headers=B).status_code == 200  # another key is not slowed
    metrics = httpx.get(f"{base}/metrics").text
    key_id = hashlib.sha256(b"key-a").hexdigest()[:8]
    assert f'emotion_quota_refusals_total{{key="{key_id}",limit="requests_per_s"}}' in metrics
    assert "key-a" not in metrics
