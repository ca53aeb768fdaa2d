"""The blocking client: one httpx.Client, retries as calls.py says, and the loops (waiting for a job,
paging through lists, a live stream) written for threads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Literal, TypeVar

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from emotion_client import calls
from emotion_client.calls import Call, Media
from emotion_client.errors import JobNotFinished
from emotion_client.streams import NORMAL_CLOSE, StreamClosed, first_message, stream_url, subprotocols
from emotion_client.types import ClipResult, Job, Link, Prediction, Study, Usage

T = TypeVar("T")
FINISHED = ("succeeded", "failed", "cancelled")


class EmotionClient:
    """The service's API. `api_key` goes in X-API-Key; 429 and 503 are retried after their Retry-After,
    and lost connections where resending is safe, up to `max_retries` times; any other refusal raises
    EmotionAPIError."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.base_url, self.api_key, self.max_retries = base_url, api_key, max_retries
        self.http = http or httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> EmotionClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self.http.request(**call.request())
            except httpx.TransportError:
                wait = calls.resend_after(call, None, attempt, self.max_retries)
                if wait is None:
                    raise
            else:
                wait = calls.resend_after(call, response, attempt, self.max_retries)
                if wait is None:
                    return call.answer(response)
            time.sleep(wait)
            attempt += 1

    # Photos and clips, answered at once
    def predict(self, images: Sequence[Media], model: str | None = None) -> Prediction:
        return self.send(calls.predict(images, model))

    def annotate(self, image: Media, format: Literal["jpeg", "png"] = "jpeg", model: str | None = None) -> bytes:
        return self.send(calls.annotate(image, format, model))

    def video(
        self, clip: Media, fps: float | None = None, smoothing: float | None = None, model: str | None = None
    ) -> ClipResult:
        return self.send(calls.video(clip, fps, smoothing, model))

    def stream(
        self,
        frames: Iterable[bytes],
        model: str | None = None,
        smoothing: float | None = None,
        max_fps: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each encoded frame (JPEG or PNG bytes) in turn, and the service's answer to it: its tracked
        faces, or `error` for a frame it could not read. StreamClosed if the service ends the stream."""
        url = stream_url(self.base_url, model)
        try:
            with connect(url, subprotocols=subprotocols(self.api_key)) as ws:
                ws.send(first_message(smoothing, max_fps))
                for frame in frames:
                    ws.send(frame)
                    yield json.loads(ws.recv())
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code != NORMAL_CLOSE:
                raise StreamClosed(closed.rcvd.code, closed.rcvd.reason) from None
            raise

    # Jobs
    def submit_job(
        self,
        media: Media,
        *,
        fps: float | None = None,
        smoothing: float | None = None,
        model: str | None = None,
        callback_url: str | None = None,
        tag: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a photo or clip. With the same idempotency_key, the job made before comes back
        (`replayed` true), finished or not: wait for it with wait_for_job, not for a webhook."""
        return self.send(calls.submit_job(media, fps, smoothing, model, callback_url, tag, idempotency_key))

    def job(self, job_id: str) -> Job:
        return self.send(calls.job(job_id))

    def wait_for_job(self, job_id: str, timeout_s: float = 600.0, poll_s: float = 1.0) -> Job:
        """The job once finished (succeeded, failed or cancelled); JobNotFinished past the timeout."""
        deadline = time.monotonic() + timeout_s
        while (job := self.job(job_id))["status"] not in FINISHED:
            if time.monotonic() > deadline:
                raise JobNotFinished(job)
            time.sleep(poll_s)
        return job

    def iter_jobs(
        self, status: str | None = None, kind: str | None = None, tag: str | None = None, page_size: int = 100
    ) -> Iterator[Job]:
        """This key's jobs, newest first, page after page."""
        cursor = None
        while True:
            page = self.send(calls.jobs_page(status, kind, tag, page_size, cursor))
            yield from page["jobs"]
            if not (cursor := page["next_cursor"]):
                return

    def cancel_job(self, job_id: str) -> Job:
        return self.send(calls.cancel_job(job_id))

    def redeliver_webhook(self, job_id: str) -> Job:
        return self.send(calls.redeliver_webhook(job_id))

    # Studies
    def create_study(
        self,
        name: str,
        stimulus_duration_s: float,
        *,
        events: Sequence[Mapping[str, Any]] = (),
        category: str | None = None,
        callback_url: str | None = None,
        target_sessions: int | None = None,
    ) -> Study:
        return self.send(calls.create_study(name, stimulus_duration_s, events, category, callback_url, target_sessions))

    def study(self, study_id: str) -> Study:
        return self.send(calls.study(study_id))

    def put_stimulus(self, study_id: str, clip: Media) -> dict:
        return self.send(calls.put_stimulus(study_id, clip))

    def add_session(
        self,
        study_id: str,
        recording: Media,
        *,
        viewer: str | None = None,
        offset_s: float = 0.0,
        attributes: Mapping[str, str] | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        return self.send(calls.add_session(study_id, recording, viewer, offset_s, attributes, model, idempotency_key))

    def create_link(
        self,
        study_id: str,
        mode: Literal["upload", "on-device", "on-device-or-upload"] = "upload",
        *,
        return_url: str | None = None,
        expires_in_h: float = 168,
        max_sessions: int | None = None,
    ) -> Link:
        return self.send(calls.create_link(study_id, mode, return_url, expires_in_h, max_sessions))

    def report(self, study_id: str, threshold: float | None = None, segment: str | None = None) -> dict:
        return self.send(calls.report(study_id, threshold, segment))

    def compare(self, a: str, b: str, threshold: float | None = None) -> dict:
        return self.send(calls.compare(a, b, threshold))

    # Usage
    def usage(self, first: date | None = None, last: date | None = None) -> Usage:
        """This key's use per UTC day, `first` to `last` (default: the last 30 days)."""
        return self.send(calls.usage(first, last))
