"""Asynchronous jobs end to end: real service processes on SQLite and on a real PostgreSQL, a real
webhook receiver verifying every signature with the Standard Webhooks reference verifier."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.jobs.media import open_media_store
from tests.helpers.clips import clip_bytes
from tests.helpers.data import videos_dir
from tests.helpers.jobs import (
    PHOTO,
    SECRET,
    eventually,
    job_settings,
    uploads_in,
    verified,
    wait_for,
    wait_for_deliveries,
)
from tests.helpers.live_service import LiveService, free_port, running_service, service_environment
from tests.helpers.object_store import s3_server
from tests.helpers.postgres import postgres_server
from tests.helpers.webhook_receiver import Receiver, webhook_receiver


def without_request_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


@pytest.fixture(scope="module")
def sqlite_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with running_service(**job_settings(tmp_path_factory.mktemp("jobs"))) as service:
        yield service


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="module")
def postgres_service(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[LiveService]:
    with running_service(**job_settings(tmp_path_factory.mktemp("pg-jobs"), postgres_url)) as service:
        yield service


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest) -> LiveService:
    return request.getfixturevalue(f"{request.param.replace('postgresql', 'postgres')}_service")


def test_a_clip_job_gives_the_synchronous_answer_and_a_signed_event(service: LiveService) -> None:
    clip = clip_bytes("two-people-head-pose.webm")
    with webhook_receiver() as receiver:
        submitted = httpx.post(
            f"{service.base}/v1/jobs",
            files={"file": ("two.webm", clip)},
            data={"fps": "4", "smoothing": "0.5", "tag": "crm-4711", "callback_url": receiver.url},
        )
        assert submitted.status_code == 202
        accepted = submitted.json()
        assert submitted.headers["location"] == f"/v1/jobs/{accepted['job_id']}" == accepted["links"]["self"]
        assert accepted["status"] == "queued" and accepted["tag"] == "crm-4711"
        job = wait_for(service, accepted["job_id"], ("succeeded", "failed"))
        wait_for_deliveries(receiver, 1)
        (event,) = verified(receiver)
    assert job["status"] == "succeeded" and job["kind"] == "video" and job["attempts"] == 1 and job["error"] is None
    sync = httpx.post(
        f"{service.base}/v1/video", params={"fps": 4, "smoothing": 0.5}, files={"file": ("two.webm", clip)}
    )
    assert without_request_id(job["result"]) == without_request_id(sync.json())
    assert job["result"]["summary"]["people"] == 2
    assert event == {
        "type": "job.succeeded",
        "timestamp": job["finished_at"].replace("Z", "+00:00"),
        "data": {
            "job_id": job["job_id"],
            "kind": "video",
            "tag": "crm-4711",
            "status": "succeeded",
            "links": {"self": f"/v1/jobs/{job['job_id']}"},
        },
    }
    assert receiver.deliveries[0].headers["webhook-id"] == f"msg_{job['job_id']}"
    done = wait_for(service, job["job_id"], ("succeeded",))
    assert done["webhook"]["attempts"] == 1 and done["webhook"]["last_status"] == 200
    assert done["webhook"]["delivered_at"] is not None


def test_a_photo_job_gives_the_predict_answer(sqlite_service: LiveService) -> None:
    submitted = httpx.post(f"{sqlite_service.base}/v1/jobs", files={"file": ("two.jpg", PHOTO)}).json()
    job = wait_for(sqlite_service, submitted["job_id"], ("succeeded", "failed"))
    sync = httpx.post(f"{sqlite_service.base}/v1/predict", files={"files": ("two.jpg", PHOTO)}).json()
    assert job["kind"] == "photo" and without_request_id(job["result"]) == without_request_id(sync)
    assert len(job["result"]["images"][0]["faces"]) == 2


def test_uploads_are_deleted_when_their_jobs_end(tmp_path: Path) -> None:
    with running_service(**job_settings(tmp_path)) as service:
        job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()["job_id"]
        wait_for(service, job_id, ("succeeded",))
        assert eventually(lambda: list((tmp_path / "media").iterdir()) == [])


def test_failed_deliveries_are_retried_with_the_same_id_and_410_stops_them(sqlite_service: LiveService) -> None:
    with webhook_receiver([500, 500, 200]) as flaky, webhook_receiver([410]) as gone:
        ids = []
        for receiver in (flaky, gone):
            data = {"callback_url": receiver.url}
            ids.append(
                httpx.post(f"{sqlite_service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data=data).json()[
                    "job_id"
                ]
            )
        wait_for_deliveries(flaky, 3)
        wait_for_deliveries(gone, 1)
        time.sleep(1.0)  # a retry after 410 would have come by now (the schedule is 0.2 s)
        assert [event["data"]["job_id"] for event in verified(flaky)] == [ids[0]] * 3
        assert len({d.headers["webhook-id"] for d in flaky.deliveries}) == 1
        assert len(gone.deliveries) == 1
    flaky_job = httpx.get(f"{sqlite_service.base}/v1/jobs/{ids[0]}").json()["webhook"]
    gone_job = httpx.get(f"{sqlite_service.base}/v1/jobs/{ids[1]}").json()["webhook"]
    assert (flaky_job["attempts"], flaky_job["last_status"]) == (3, 200) and flaky_job["delivered_at"]
    assert (gone_job["attempts"], gone_job["last_status"], gone_job["delivered_at"]) == (1, 410, None)
    assert (flaky_job["status"], gone_job["status"]) == ("delivered", "gave_up")


def test_an_event_given_up_is_redelivered_with_its_id(sqlite_service: LiveService) -> None:
    base = sqlite_service.base
    with webhook_receiver([410]) as receiver:
        data = {"callback_url": receiver.url}
        job_id = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data=data).json()["job_id"]
        assert eventually(lambda: httpx.get(f"{base}/v1/jobs/{job_id}").json()["webhook"]["status"] == "gave_up")
        again = httpx.post(f"{base}/v1/jobs/{job_id}/webhook/redeliver")
        assert again.status_code == 202 and again.json()["webhook"]["status"] == "pending"
        assert eventually(lambda: httpx.get(f"{base}/v1/jobs/{job_id}").json()["webhook"]["status"] == "delivered")
        first, second = receiver.deliveries
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"msg_{job_id}"
        assert [event["data"]["job_id"] for event in verified(receiver)] == [job_id, job_id]
    plain = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()["job_id"]
    wait_for(sqlite_service, plain, ("succeeded",))
    refused = httpx.post(f"{base}/v1/jobs/{plain}/webhook/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_event"
    assert httpx.post(f"{base}/v1/jobs/{'0' * 32}/webhook/redeliver").status_code == 404


def test_idempotency_keys_give_one_job_each(service: LiveService) -> None:
    files = {"file": ("p.jpg", PHOTO)}
    first = httpx.post(f"{service.base}/v1/jobs", files=files, headers={"Idempotency-Key": "order-1"})
    again = httpx.post(f"{service.base}/v1/jobs", files=files, headers={"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["job_id"] == again.json()["job_id"]
    other = httpx.post(
        f"{service.base}/v1/jobs", files=files, data={"tag": "x"}, headers={"Idempotency-Key": "order-1"}
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"

    def submit(index: int) -> str:
        headers = {"Idempotency-Key": f"burst-{index}"}
        return httpx.post(f"{service.base}/v1/jobs", files=files, headers=headers, timeout=60).json()["job_id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(24)))
    assert len(set(ids)) == 24
    for job_id in ids:
        assert wait_for(service, job_id, ("succeeded", "failed"))["status"] == "succeeded"


def test_bad_media_is_refused_at_upload_and_never_queued(sqlite_service: LiveService) -> None:
    base = sqlite_service.base
    before = httpx.get(f"{base}/v1/jobs", params={"limit": 100}).json()["jobs"]
    for name, data, status, code in [
        ("a.txt", b"not media at all", 415, "unsupported_type"),
        ("a.jpg", b"", 400, "empty"),
        ("a.jpg", PHOTO[: len(PHOTO) // 3], 400, "undecodable"),
    ]:
        answer = httpx.post(f"{base}/v1/jobs", files={"file": (name, data)})
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    unknown = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data={"model": "nope"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_model"
    assert httpx.get(f"{base}/v1/jobs", params={"limit": 100}).json()["jobs"] == before


def test_listing_is_newest_first_with_cursors_and_filters(sqlite_service: LiveService) -> None:
    base = sqlite_service.base
    ids = [
        httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data={"tag": "page-test"}).json()["job_id"]
        for _ in range(5)
    ]
    seen, cursor = [], None
    while True:
        page = httpx.get(f"{base}/v1/jobs", params={"tag": "page-test", "limit": 2, "cursor": cursor}).json()
        seen += [job["job_id"] for job in page["jobs"]]
        assert all(job["result"] is None for job in page["jobs"])
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids[::-1]
    assert httpx.get(f"{base}/v1/jobs", params={"cursor": "bogus"}).status_code == 422


def test_a_cancelled_job_keeps_no_result(sqlite_service: LiveService) -> None:
    base = sqlite_service.base
    job_id = httpx.post(f"{base}/v1/jobs", files={"file": ("g.gif", clip_bytes("one-person-head-pose.gif"))}).json()[
        "job_id"
    ]
    cancelled = httpx.delete(f"{base}/v1/jobs/{job_id}").json()
    if cancelled["status"] == "cancelled":
        assert cancelled["result"] is None and cancelled["error"]["code"] == "cancelled"
    time.sleep(1.0)
    assert httpx.get(f"{base}/v1/jobs/{job_id}").json()["status"] in ("cancelled", "succeeded")
    assert httpx.delete(f"{base}/v1/jobs/{'0' * 32}").status_code == 404


def test_each_key_sees_only_its_own_jobs(tmp_path: Path) -> None:
    with running_service(**job_settings(tmp_path, api_keys="key-a,key-b")) as service:
        mine = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, headers={"X-API-Key": "key-a"})
        job_id = mine.json()["job_id"]
        assert httpx.get(f"{service.base}/v1/jobs/{job_id}", headers={"X-API-Key": "key-a"}).status_code == 200
        assert httpx.get(f"{service.base}/v1/jobs/{job_id}", headers={"X-API-Key": "key-b"}).status_code == 404
        assert httpx.get(f"{service.base}/v1/jobs", headers={"X-API-Key": "key-b"}).json()["jobs"] == []
        assert httpx.delete(f"{service.base}/v1/jobs/{job_id}", headers={"X-API-Key": "key-b"}).status_code == 404
        assert httpx.get(f"{service.base}/v1/jobs/{job_id}").status_code == 401


def test_private_callback_targets_are_refused_unless_allowed(tmp_path: Path) -> None:
    settings = job_settings(tmp_path, webhook_allow_private="false")
    with running_service(**settings) as service:
        for url in ("http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest", "ftp://a/x"):
            answer = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data={"callback_url": url})
            assert answer.status_code == 422 and answer.json()["error"]["code"] == "unsafe_callback_url", url


def test_retention_deletes_finished_jobs(tmp_path: Path) -> None:
    with running_service(**job_settings(tmp_path, job_retention_h=0.0003)) as service:  # about a second
        job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()["job_id"]
        wait_for(service, job_id, ("succeeded",))
        deadline = time.monotonic() + 15
        while httpx.get(f"{service.base}/v1/jobs/{job_id}").status_code != 404:
            assert time.monotonic() < deadline, "the finished job was not deleted"
            time.sleep(0.2)


def running_job(service: LiveService, clip: bytes, receiver: Receiver) -> str:
    data = {"fps": "30", "callback_url": receiver.url}
    job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("two.webm", clip)}, data=data).json()["job_id"]
    wait_for(service, job_id, ("running",))
    return job_id


def test_a_killed_replica_s_job_is_finished_after_restart_on_sqlite(tmp_path: Path) -> None:
    """`kill -9` mid-job; the same service started again takes the job up when its lease expires."""
    settings = job_settings(tmp_path, job_lease_s=1.5, emotion_models="emotion", default_emotion_model="emotion")
    clip = clip_bytes("two-people-head-pose.webm")
    with webhook_receiver() as receiver:
        with running_service(**settings) as first:
            job_id = running_job(first, clip, receiver)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
        with running_service(**settings) as second:
            job = wait_for(second, job_id, ("succeeded", "failed"))
            wait_for_deliveries(receiver, 1)
            time.sleep(0.5)
            events = verified(receiver)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert job["result"]["summary"]["people"] == 2
    assert {d.headers["webhook-id"] for d in receiver.deliveries} == {f"msg_{job_id}"}
    assert [e["type"] for e in events] == ["job.succeeded"]
    assert eventually(lambda: list((tmp_path / "media").iterdir()) == [])


def taken_up(service: LiveService, job_id: str, claims: int) -> bool:
    """Whether the job has had this many claims within 30 s (the last one this replica's)."""
    return eventually(lambda: len(httpx.get(f"{service.base}/v1/jobs/{job_id}").json()["claims"]) == claims, 30)


def test_a_long_job_survives_three_rolling_restarts_at_no_attempt_s_cost(tmp_path: Path) -> None:
    """A 40 s clip; three times a new replica starts and the one holding the job gets SIGTERM: each gives
    the job back as it stops, the next takes it up, and the last finishes it: one result, one event."""
    looped = tmp_path / "long.webm"
    source = str(videos_dir() / "two-people-head-pose.webm")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-stream_loop", "8", "-i", source, "-c", "copy", str(looped)], check=True
    )
    settings = job_settings(
        tmp_path, drain_s=0, shutdown_timeout_s=1, **{"emotion_models": "emotion", "default_emotion_model": "emotion"}
    )
    with webhook_receiver() as receiver, contextlib.ExitStack() as replicas:
        holder = replicas.enter_context(running_service(**settings))
        data = {"fps": "10", "callback_url": receiver.url}
        files = {"file": ("long.webm", looped.read_bytes())}
        job_id = httpx.post(f"{holder.base}/v1/jobs", files=files, data=data).json()["job_id"]
        wait_for(holder, job_id, ("running",))
        for restart in range(3):
            newer = replicas.enter_context(running_service(**settings))
            time.sleep(2)  # the job runs a while on the old replica
            holder.process.send_signal(signal.SIGTERM)
            assert holder.process.wait(timeout=60) == 0
            assert taken_up(newer, job_id, claims=restart + 2)
            holder = newer
        # The last replica runs the whole clip with the accurate model: about 50 s on a 2-core host
        # without VNNI, where int8 convolutions take the exact, slower path.
        job = wait_for(holder, job_id, ("succeeded", "failed"), timeout_s=300)
        wait_for_deliveries(receiver, 1)
        time.sleep(0.5)
        events = verified(receiver)
    assert job["status"] == "succeeded" and (job["attempts"], job["interruptions"]) == (1, 3)
    assert [claim["outcome"] for claim in job["claims"]] == ["interrupted"] * 3 + ["finished"]
    assert job["started_at"] == job["claims"][-1]["started_at"].replace("+00:00", "Z")
    assert job["result"]["video"]["frames_analysed"] >= 390 and not job["result"]["video"]["partial"]  # all 40 s
    assert [event["type"] for event in events] == ["job.succeeded"]


def test_a_killed_replica_s_job_is_finished_by_the_other_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Two replicas on one PostgreSQL; the one holding the job is killed; the other finishes it, once."""
    database_url = new_database(postgres_url, "replicas")  # no other replica of this module takes its jobs
    settings = job_settings(
        tmp_path, database_url, job_lease_s=1.5, emotion_models="emotion", default_emotion_model="emotion"
    )
    clip = clip_bytes("two-people-head-pose.webm")
    with webhook_receiver() as receiver, running_service(**settings) as a, running_service(**settings) as b:
        job_id = running_job(a, clip, receiver)
        victim = a if job_is_held_by(a, database_url, job_id) else b
        survivor = b if victim is a else a
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        job = wait_for(survivor, job_id, ("succeeded", "failed"))
        wait_for_deliveries(receiver, 1)
        time.sleep(0.5)
        assert {d.headers["webhook-id"] for d in receiver.deliveries} == {f"msg_{job_id}"}
    assert job["status"] == "succeeded" and job["attempts"] == 2


def job_is_held_by(service: LiveService, database_url: str, job_id: str) -> bool:
    """Whether the service's process holds the job's lease (lease owners are host-pid-random)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as connection:
        owner = connection.execute(text("SELECT lease_owner FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    engine.dispose()
    return owner is not None and f"-{service.process.pid}-" in owner


def new_database(server_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def test_uploads_can_wait_in_an_object_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    with s3_server() as environment:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        bucket = boto3.client("s3", endpoint_url=environment["AWS_ENDPOINT_URL"])
        bucket.create_bucket(Bucket="emotion-media")
        settings = {**job_settings(tmp_path), "media_store": "s3://emotion-media/uploads"}
        with running_service(**settings) as service:
            job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()["job_id"]
            job = wait_for(service, job_id, ("succeeded", "failed"))
        assert job["status"] == "succeeded" and len(job["result"]["images"][0]["faces"]) == 2
        assert eventually(lambda: uploads_in(bucket) == [])  # the upload is deleted once its job is done


def test_an_event_of_a_job_that_did_not_succeed_says_why(tmp_path: Path) -> None:
    """A cancelled job's event carries its error, as GET shows it: the receiver needs no second call."""
    with webhook_receiver() as receiver, running_service(**job_settings(tmp_path, job_workers=0)) as service:
        data = {"callback_url": receiver.url}
        job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data=data).json()["job_id"]
        cancelled = httpx.delete(f"{service.base}/v1/jobs/{job_id}").json()
        assert eventually(lambda: len(receiver.deliveries) == 1)
    (event,) = verified(receiver)
    assert event["type"] == "job.cancelled" and event["data"]["error"] == cancelled["error"]
    assert event["data"]["error"]["code"] == "cancelled"


def test_the_object_store_keeps_lists_and_deletes_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the orphan sweep relies on: every stored upload is listed by age, and deleting twice is fine."""
    import boto3

    with s3_server() as environment:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=environment["AWS_ENDPOINT_URL"]).create_bucket(Bucket="emotion-media")
        media = open_media_store("s3://emotion-media/uploads")
        location = media.save("job1", PHOTO)
        assert location == "emotion-media/uploads/job1" and media.read(location) == PHOTO
        assert media.older_than(3600) == [] and media.older_than(-1) == [location]
        media.delete(location)
        media.delete(location)
        assert media.older_than(-1) == []
    with pytest.raises(RuntimeError, match="s3://bucket/prefix"):
        open_media_store("gs://emotion-media/uploads")


def test_the_documented_client_submits_receives_verifies_and_fetches(tmp_path: Path) -> None:
    operations = (Path(__file__).parents[3] / "docs" / "operations.md").read_text()
    code = re.search(r"<!-- job-client:start -->\n```python\n(.*?)```", operations, re.S).group(1)
    script = tmp_path / "client.py"
    script.write_text(code)
    clip = tmp_path / "two.webm"
    clip.write_bytes(clip_bytes("two-people-head-pose.webm"))
    with running_service(**job_settings(tmp_path)) as service:
        environment = {**os.environ, "EMOTION_URL": service.base, "EMOTION_WEBHOOK_SECRET": SECRET}
        environment["CALLBACK_PORT"] = str(free_port())
        command = [sys.executable, str(script), str(clip)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
        # Run again, as a client retrying the same request does: the same job, answered without waiting.
        again = subprocess.run(command, capture_output=True, text=True, timeout=30, env=environment)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("queued ") and len(lines) == 3
    assert all(re.fullmatch(r"person \d: \w+ over \d+ frames", line) for line in lines[1:])
    assert again.returncode == 0 and again.stdout.splitlines() == lines, again.stderr


def test_workers_apart_from_the_api_take_its_jobs_and_stop_cleanly(tmp_path: Path) -> None:
    """The API with no workers of its own queues; `python -m service worker` on the same store answers,
    then finishes on SIGTERM with exit code 0."""
    settings = job_settings(tmp_path, job_workers=0)
    with running_service(**settings) as service:
        job_id = httpx.post(f"{service.base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}).json()["job_id"]
        time.sleep(1)
        assert httpx.get(f"{service.base}/v1/jobs/{job_id}").json()["status"] == "queued"
        command = [sys.executable, "-m", "service", "worker"]
        worker = subprocess.Popen(command, env=service_environment(**settings), stderr=subprocess.PIPE, text=True)
        try:
            job = wait_for(service, job_id, ("succeeded", "failed"))
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    assert job["status"] == "succeeded" and len(job["result"]["images"][0]["faces"]) == 2
    assert "finishing the jobs in hand" in worker.stderr.read()
    assert eventually(lambda: list((tmp_path / "media").iterdir()) == [])
