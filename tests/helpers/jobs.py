"""What the job tests share: a service's job settings, a photo with two faces, and waiting for jobs and
webhooks."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import LiveService
from tests.helpers.webhook_receiver import Receiver
from training.scenes import place_faces

SECRET = "whsec_" + base64.b64encode(b"a test secret of thirty-two byte").decode()
FAST = {"emotion_models": "emotion-fast", "default_emotion_model": "emotion-fast"}
PHOTO = jpeg(place_faces(fer_faces("happy", 1) + fer_faces("sad", 1), 300, 480, 120, seed=8).image)


def job_settings(tmp: Path, database_url: str | None = None, **more: object) -> dict:
    return {
        "database_url": database_url or f"sqlite:///{tmp / 'jobs.db'}",
        "media_store": str(tmp / "media"),
        "webhook_secret": SECRET,
        "webhook_allow_private": "true",
        "webhook_retry_delays_s": "0.2,0.2,0.2",
        "job_poll_s": 0.1,
        **FAST,
        **more,
    }


def wait_for(
    service: LiveService, job_id: str, states: tuple[str, ...], headers: dict | None = None, timeout_s: float = 60
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{service.base}/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")


def wait_for_deliveries(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(receiver.deliveries) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.deliveries) >= count, f"{len(receiver.deliveries)} deliveries, expected {count}"


def eventually(condition: Callable[[], bool], timeout_s: float = 10) -> bool:
    """Whether the condition holds within the timeout (a job's upload is deleted just after it ends)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def uploads_in(bucket) -> list[str]:
    listed = bucket.list_objects_v2(Bucket="emotion-media").get("Contents", [])
    return [o["Key"] for o in listed if not o["Key"].endswith("/")]


def verified(receiver: Receiver) -> list[dict]:
    """Every delivery, its signature checked by the reference verifier (which raises on a bad one)."""
    return [Webhook(SECRET).verify(d.body, d.headers) for d in receiver.deliveries]
