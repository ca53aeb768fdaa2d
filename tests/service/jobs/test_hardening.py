"""The second adversarial round replayed against real service processes: receivers that trickle, hang
or flood cannot stall other tenants' webhooks (also with a second worker process on the same
database), nor keep the process from exiting; bad callback URLs, Retry-After values and requests
get clear answers; retention waits for webhook retries; killed uploads leave nothing behind."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.clips import clip_bytes
from tests.helpers.hostile_receiver import hostile_receiver
from tests.helpers.jobs import PHOTO, eventually, job_settings, verified, wait_for, wait_for_deliveries
from tests.helpers.live_service import running_service, service_environment
from tests.helpers.webhook_receiver import webhook_receiver


def submit_photo(base: str, callback_url: str | None = None, **data: str) -> httpx.Response:
    form = {"callback_url": callback_url, **data} if callback_url else data
    return httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data=form, timeout=30)


def webhook_of(base: str, job_id: str) -> dict:
    return httpx.get(f"{base}/v1/jobs/{job_id}").json()["webhook"]


def test_slow_receivers_delay_only_themselves_across_a_fleet(tmp_path: Path) -> None:
    """Trickling and hanging receivers, with an API and a second worker process on one database: a good
    receiver's event arrives while every slow attempt is still held, and each slow attempt is cut at the
    deadline and counted."""
    settings = job_settings(tmp_path, webhook_timeout_s=20, webhook_retry_delays_s="600")
    command = [sys.executable, "-m", "service", "worker"]
    with (
        hostile_receiver("trickle") as trickle,
        hostile_receiver("hang") as hang,
        webhook_receiver() as good,
        running_service(**settings) as service,
    ):
        worker = subprocess.Popen(command, env=service_environment(**settings), stderr=subprocess.DEVNULL)
        try:
            slow = [submit_photo(service.base, r.url).json()["job_id"] for r in (trickle, hang) for _ in range(3)]
            for job_id in slow:
                wait_for(service, job_id, ("succeeded",))
            assert eventually(lambda: trickle.connections + hang.connections >= 4)
            fine = submit_photo(service.base, good.url).json()["job_id"]
            wait_for(service, fine, ("succeeded",))
            wait_for_deliveries(good, 1)
            assert not trickle.closed_by_sender and not hang.closed_by_sender, "the good event waited for a slow one"
            assert verified(good)[0]["data"]["job_id"] == fine
            # Each slow attempt ends at the deadline, counted, with the next one due on the schedule.
            assert eventually(lambda: all(webhook_of(service.base, j)["attempts"] == 1 for j in slow), 60)
            states = [webhook_of(service.base, j) for j in slow]
            assert all(s["last_status"] is None and s["next_attempt_at"] for s in states)
            assert trickle.connections + hang.connections == len(slow)  # never sent twice by the two processes
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0


@pytest.mark.parametrize("behaviour", ["huge", "endless"])
def test_an_answer_s_body_is_never_read(tmp_path: Path, behaviour: str) -> None:
    """A 200 with a 100 MB or an endless body delivers, and the process reads none of it."""
    with hostile_receiver(behaviour) as receiver, running_service(**job_settings(tmp_path)) as service:
        before = service.rss_mb()
        job_id = submit_photo(service.base, receiver.url).json()["job_id"]
        assert eventually(lambda: webhook_of(service.base, job_id)["delivered_at"] is not None, 30)
        assert service.rss_mb() - before < 60
        assert receiver.connections == 1


def test_sigterm_during_a_trickling_delivery_exits_within_the_shutdown_timeout(tmp_path: Path) -> None:
    settings = job_settings(tmp_path, webhook_timeout_s=60, shutdown_timeout_s=3, drain_s=0)
    with hostile_receiver("trickle") as trickle, running_service(**settings) as service:
        submit_photo(service.base, trickle.url)
        assert eventually(lambda: trickle.connections == 1, 30)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=20) == 0
        assert "receiver-secret" not in service.log(), "a callback URL's query reached the log"


def retry_after_receiver(value: str):
    """A receiver answering 503 with this Retry-After, counting its calls."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            calls.append(time.monotonic())
            self.send_response(503)
            self.send_header("retry-after", value.encode().decode("latin-1"))  # its UTF-8 bytes, as sent
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook", calls


@pytest.mark.parametrize("value", ["999999999999", "١٢٣", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])
def test_any_retry_after_is_an_attempt_and_stays_within_the_schedule(tmp_path: Path, value: str) -> None:
    server, url, calls = retry_after_receiver(value)
    try:
        with running_service(**job_settings(tmp_path, webhook_retry_delays_s="0.5,1")) as service:
            job_id = submit_photo(service.base, url).json()["job_id"]
            assert eventually(lambda: webhook_of(service.base, job_id)["given_up_at"] is not None, 30)
            webhook = webhook_of(service.base, job_id)
            assert webhook["attempts"] == 3 == len(calls) and webhook["last_status"] == 503
            assert webhook["next_attempt_at"] is None and webhook["delivered_at"] is None
            assert "Traceback" not in service.log()
    finally:
        server.shutdown()
        server.server_close()


def test_retention_waits_for_a_webhook_s_retries(tmp_path: Path) -> None:
    """A job past retention is kept while its webhook has retries left, and deleted once they gave up."""
    server, url, calls = retry_after_receiver("0")
    try:
        settings = job_settings(tmp_path, job_retention_h=1 / 3600, webhook_retry_delays_s="3,3")
        with running_service(**settings) as service:
            job_id = submit_photo(service.base, url).json()["job_id"]
            assert eventually(lambda: len(calls) == 2, 20)
            assert httpx.get(f"{service.base}/v1/jobs/{job_id}").status_code == 200  # 1 s retention long past
            assert eventually(lambda: len(calls) == 3, 20)
            assert eventually(lambda: httpx.get(f"{service.base}/v1/jobs/{job_id}").status_code == 404, 40)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url", ["http://a..b/", "http://127.0.0.1:99999/", "http://127.0.0.1:abc/", "http://[::1/", "http://" + "a" * 64]
)
def test_a_callback_url_that_does_not_parse_is_a_422(tmp_path: Path, url: str, request: pytest.FixtureRequest) -> None:
    service = request.getfixturevalue("shared_service")
    answer = submit_photo(service.base, url)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "unsafe_callback_url"


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory):
    with running_service(**job_settings(tmp_path_factory.mktemp("hardening"))) as service:
        yield service


def test_the_same_rules_as_the_synchronous_endpoints(shared_service) -> None:
    base = shared_service.base
    clip = clip_bytes("two-people-head-pose.webm")
    # A clip whose container opens but whose frames do not decode is refused now, not queued to fail,
    # as /v1/video refuses it.
    noise = np.random.default_rng(0).integers(0, 256, len(clip) - 1000, dtype=np.uint8).tobytes()
    broken = clip[:1000] + noise
    for route in ("/v1/jobs", "/v1/video"):
        answer = httpx.post(f"{base}{route}", files={"file": ("c.webm", broken)})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "undecodable"
    # An empty Idempotency-Key is not a key.
    answer = httpx.post(f"{base}/v1/jobs", files={"file": ("p.jpg", PHOTO)}, headers={"Idempotency-Key": ""})
    assert answer.status_code == 422
    # Two file parts: refused, not one dropped silently.
    for route in ("/v1/jobs", "/v1/video"):
        two = [("file", ("a.jpg", PHOTO)), ("file", ("b.jpg", PHOTO))]
        answer = httpx.post(f"{base}{route}", files=two)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "too_many_files"


def test_an_upload_killed_before_its_job_was_stored_is_swept(tmp_path: Path) -> None:
    """kill -9 while 50 MB uploads are being saved: after a restart, every upload left belongs to a job."""
    settings = job_settings(tmp_path, media_orphan_age_s=2, request_body_timeout_s=2, job_workers=0)
    big = clip_bytes("two-people-head-pose.webm") + bytes(50_000_000)  # a clip with 50 MB of trailing bytes
    media = tmp_path / "media"
    for delay in (0.3, 0.6, 0.9):
        with running_service(**settings) as service:
            threading.Thread(target=submit_big, args=(service.base, big), daemon=True).start()
            time.sleep(delay)
            service.process.kill()
    planted = [media / ("0" * 32), media / ("1" * 32 + ".partial")]  # as a kill between save and commit leaves
    media.mkdir(exist_ok=True)  # on a loaded host, no upload may have begun before its kill
    for orphan in planted:
        orphan.write_bytes(b"a viewer's recording")
    with running_service(**settings):
        assert eventually(lambda: not any(orphan.exists() for orphan in planted), 20)
        assert eventually(lambda: owned_media(tmp_path) >= set(map(str, media.iterdir())), 20)


def submit_big(base: str, data: bytes) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{base}/v1/jobs", files={"file": ("big.webm", data)}, timeout=30)


def owned_media(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        return {row[0] for row in db.execute("SELECT media FROM jobs WHERE media IS NOT NULL")}
