"""The Python client (clients/python) against a live service with keys, webhooks and a request rate:
every kind of call, sync and async, the replay of an Idempotency-Key, paging, retries after 429, its
errors, and webhook verification with the reference library."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from emotion_client import (
    AsyncEmotionClient,
    EmotionAPIError,
    EmotionClient,
    WebhookVerificationError,
    verify_webhook,
)

from tests.helpers.clips import clip_bytes
from tests.helpers.jobs import PHOTO, SECRET, job_settings, wait_for_deliveries
from tests.helpers.links import ad_clip
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.webhook_receiver import Receiver, webhook_receiver

KEY = "client-key"
RATE = 5  # requests a second: the retry test goes past it
CLIP = clip_bytes("asl-please.mp4")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    settings = job_settings(tmp_path_factory.mktemp("client"), api_keys=KEY, quota_requests_per_s=RATE)
    with running_service(**settings) as live:
        yield live


@pytest.fixture
def client(service: LiveService) -> Iterator[EmotionClient]:
    with EmotionClient(service.base, KEY) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


def test_photos_clips_and_streams(client: EmotionClient) -> None:
    (image,) = client.predict([PHOTO])["images"]
    assert {face["dominant_emotion"] for face in image["faces"]} == {"happy", "sad"}
    assert client.annotate(PHOTO).startswith(b"\xff\xd8")  # a JPEG
    clip = client.video(("c.mp4", CLIP), fps=5)
    assert clip["video"]["frames_analysed"] >= 10 and len(clip["tracks"]) == 1
    answers = list(client.stream([PHOTO] * 3, smoothing=0))
    assert [len(a["faces"]) for a in answers] == [2, 2, 2]
    with pytest.raises(EmotionAPIError) as refused:
        client.predict([PHOTO], model="no-such-model")
    assert (refused.value.status, refused.value.code) == (422, "unknown_model")


def test_a_job_its_replay_and_its_verified_webhook(client: EmotionClient, receiver: Receiver) -> None:
    job = client.submit_job(PHOTO, callback_url=receiver.url, tag="crm-1", idempotency_key="order-1")
    assert not job["replayed"]
    done = client.wait_for_job(job["job_id"])
    assert done["status"] == "succeeded" and done["result"]["images"][0]["faces"]
    # The replay that made the documented client hang: the finished job comes back, marked.
    again = client.submit_job(PHOTO, callback_url=receiver.url, tag="crm-1", idempotency_key="order-1")
    assert again["replayed"] and again["job_id"] == job["job_id"]
    assert client.wait_for_job(again["job_id"])["status"] == "succeeded"
    wait_for_deliveries(receiver, 1)
    delivery = receiver.deliveries[0]
    event = verify_webhook(delivery.body.encode(), delivery.headers, ["whsec_" + "A" * 32, SECRET])
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job["job_id"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(delivery.body.encode().replace(b"succeeded", b"failed"), delivery.headers, SECRET)
    assert client.redeliver_webhook(job["job_id"])["webhook"]["status"] == "pending"
    wait_for_deliveries(receiver, 2)
    assert receiver.deliveries[1].headers["webhook-id"] == delivery.headers["webhook-id"]


def test_paging_through_every_job(client: EmotionClient) -> None:
    made = {client.submit_job(PHOTO, tag="paged")["job_id"] for _ in range(3)}
    listed = [job["job_id"] for job in client.iter_jobs(tag="paged", page_size=1)]
    assert set(listed) == made and len(listed) == 3


def test_refusals_past_the_rate_are_retried_after_retry_after(service: LiveService) -> None:
    with EmotionClient(service.base, KEY, max_retries=8) as patient:
        assert len([patient.usage() for _ in range(4 * RATE)]) == 4 * RATE  # every one answered in the end
    with EmotionClient(service.base, KEY, max_retries=0) as hasty, pytest.raises(EmotionAPIError) as refused:
        for _ in range(4 * RATE):
            hasty.usage()
    assert refused.value.status == 429 and refused.value.code == "rate_limited" and refused.value.retry_after_s


def test_a_study_from_ad_to_report(client: EmotionClient, tmp_path: Path) -> None:
    study = client.create_study("client study", 2.0, events=[{"time_s": 1.0, "label": "logo"}])
    assert client.put_stimulus(study["study_id"], ("ad.mp4", ad_clip(tmp_path, 2.0)))["duration_s"] >= 1.9
    link = client.create_link(study["study_id"], "on-device-or-upload", max_sessions=10)
    assert link["url"].startswith("/watch/") and link["mode"] == "on-device-or-upload"
    session = client.add_session(study["study_id"], ("viewer.mp4", CLIP), viewer="v1", attributes={"age": "25-34"})
    assert client.wait_for_job(session["job_id"])["status"] == "succeeded"
    report = client.report(study["study_id"])
    assert report["sessions"]["analysed"] == 1
    other = client.create_study("client study b", 2.0)
    with pytest.raises(EmotionAPIError) as empty:
        client.compare(study["study_id"], other["study_id"])
    assert empty.value.code == "empty_study"
    assert client.usage()["total"]["study_sessions"] == 1


def test_the_async_client_does_the_same(service: LiveService) -> None:
    async def frames() -> AsyncIterator[bytes]:
        for _ in range(2):
            yield PHOTO

    async def scenario() -> None:
        async with AsyncEmotionClient(service.base, KEY) as client:
            predictions = await asyncio.gather(*(client.predict([PHOTO]) for _ in range(3)))
            assert all(len(p["images"][0]["faces"]) == 2 for p in predictions)
            job = await client.submit_job(("c.mp4", CLIP), fps=5, tag="async")
            done = await client.wait_for_job(job["job_id"])
            assert done["status"] == "succeeded" and len(done["result"]["tracks"]) == 1
            assert [j["job_id"] async for j in client.iter_jobs(tag="async")] == [job["job_id"]]
            assert [len(a["faces"]) async for a in client.stream(frames())] == [2, 2]
            with pytest.raises(EmotionAPIError) as missing:
                await client.job("0" * 32)
            assert missing.value.status == 404

    asyncio.run(scenario())
