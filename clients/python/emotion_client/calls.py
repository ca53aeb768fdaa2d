"""Every operation of the API, described once as a `Call`: what to send and how to read the answer.
The sync and async clients only send calls, so the two never disagree about the API.

When a call may be sent again: after 429 or 503 always (the service refused it before doing any
work); after a lost connection, 502 or 504 only if sending it twice does no harm: reads, analyses
that store nothing, PUTs, and submissions carrying an Idempotency-Key (the client makes one when
the caller gives none, and keeps it across the retries)."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from emotion_client.errors import api_error, retry_after_s
from emotion_client.types import ClipResult, Job, Link, Prediction, Study, Usage

T = TypeVar("T")
# A photo or clip: its bytes, a path to it, or (filename, bytes).
Media = bytes | str | os.PathLike | tuple[str, bytes]

REFUSED_BEFORE_WORK = {429, 503}
MAYBE_DONE = {502, 504}
LONGEST_WAIT_S = 60.0


def json_body(response: httpx.Response) -> Any:
    return response.json()


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None  # form fields, beside files
    files: Sequence[tuple[str, tuple[str, bytes]]] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    safe_to_resend: bool = True
    read: Callable[[httpx.Response], T] = json_body

    def request(self) -> dict[str, Any]:
        """The keyword arguments of httpx's `request`."""
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        data = {k: str(v) for k, v in (self.data or {}).items() if v is not None}
        return {
            "method": self.method,
            "url": self.path,
            "params": params or None,
            "data": data or None,
            "files": self.files,
            "json": self.json,
            "headers": dict(self.headers),
        }

    def answer(self, response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise api_error(response)
        return self.read(response)


def resend_after(call: Call, response: httpx.Response | None, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before sending the call again, or None to keep this answer (or raise this error).
    `response` is None when the connection failed."""
    if attempt >= max_retries:
        return None
    status = None if response is None else response.status_code
    if status in REFUSED_BEFORE_WORK or ((status is None or status in MAYBE_DONE) and call.safe_to_resend):
        told = None if response is None else retry_after_s(response)
        return min(LONGEST_WAIT_S, told if told is not None else 0.5 * 2**attempt * (1 + random.random()))
    return None


def part(media: Media, default_name: str) -> tuple[str, bytes]:
    if isinstance(media, bytes):
        return default_name, media
    if isinstance(media, tuple):
        return media
    path = Path(media)
    return path.name, path.read_bytes()


def submitted(response: httpx.Response) -> Job:
    """A submission's job: 202 made now, 200 made before by the same Idempotency-Key (`replayed`)."""
    return {**response.json(), "replayed": response.status_code == 200}


def predict(images: Sequence[Media], model: str | None) -> Call[Prediction]:
    files = [("files", part(image, f"image-{i}")) for i, image in enumerate(images)]
    return Call("POST", "/v1/predict", params={"model": model}, files=files)


def annotate(image: Media, format: str, model: str | None) -> Call[bytes]:
    params = {"format": format, "model": model}
    files = [("files", part(image, "image"))]
    return Call("POST", "/v1/annotate", params=params, files=files, read=lambda r: r.content)


def video(clip: Media, fps: float | None, smoothing: float | None, model: str | None) -> Call[ClipResult]:
    params = {"fps": fps, "smoothing": smoothing, "model": model}
    return Call("POST", "/v1/video", params=params, files=[("file", part(clip, "clip"))])


def submit_job(
    media: Media,
    fps: float | None,
    smoothing: float | None,
    model: str | None,
    callback_url: str | None,
    tag: str | None,
    idempotency_key: str | None,
) -> Call[Job]:
    fields = {"fps": fps, "smoothing": smoothing, "model": model, "callback_url": callback_url, "tag": tag}
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return Call(
        "POST", "/v1/jobs", data=fields, files=[("file", part(media, "upload"))], headers=headers, read=submitted
    )


def job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{job_id}")


def jobs_page(status: str | None, kind: str | None, tag: str | None, limit: int, cursor: str | None) -> Call[dict]:
    params = {"status": status, "kind": kind, "tag": tag, "limit": limit, "cursor": cursor}
    return Call("GET", "/v1/jobs", params=params)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("DELETE", f"/v1/jobs/{job_id}")


def redeliver_webhook(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{job_id}/webhook/redeliver")


def create_study(
    name: str,
    stimulus_duration_s: float,
    events: Sequence[Mapping[str, Any]],
    category: str | None,
    callback_url: str | None,
    target_sessions: int | None,
) -> Call[Study]:
    body = {"name": name, "stimulus_duration_s": stimulus_duration_s, "events": list(events)}
    optional = {"category": category, "callback_url": callback_url, "target_sessions": target_sessions}
    body |= {k: v for k, v in optional.items() if v is not None}
    return Call("POST", "/v1/studies", json=body, safe_to_resend=False)


def study(study_id: str) -> Call[Study]:
    return Call("GET", f"/v1/studies/{study_id}")


def put_stimulus(study_id: str, clip: Media) -> Call[dict]:
    return Call("PUT", f"/v1/studies/{study_id}/stimulus", files=[("file", part(clip, "ad"))])


def add_session(
    study_id: str,
    recording: Media,
    viewer: str | None,
    offset_s: float,
    attributes: Mapping[str, str] | None,
    model: str | None,
    idempotency_key: str | None,
) -> Call[dict]:
    """`attributes`: the respondent's own answers (e.g. {"age": "25-34"}), never inferred from a face."""
    fields = {"viewer": viewer, "offset_s": offset_s, "model": model}
    fields["attributes"] = json.dumps(attributes) if attributes else None
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    files = [("file", part(recording, "recording"))]
    return Call("POST", f"/v1/studies/{study_id}/sessions", data=fields, files=files, headers=headers)


def create_link(
    study_id: str, mode: str, return_url: str | None, expires_in_h: float, max_sessions: int | None
) -> Call[Link]:
    body = {"mode": mode, "expires_in_h": expires_in_h, "return_url": return_url, "max_sessions": max_sessions}
    body = {k: v for k, v in body.items() if v is not None}
    return Call("POST", f"/v1/studies/{study_id}/links", json=body, safe_to_resend=False)


def report(study_id: str, threshold: float | None, segment: str | None) -> Call[dict]:
    return Call("GET", f"/v1/studies/{study_id}/report", params={"threshold": threshold, "segment": segment})


def compare(a: str, b: str, threshold: float | None) -> Call[dict]:
    return Call("GET", "/v1/studies/compare", params={"a": a, "b": b, "threshold": threshold})


def usage(first: date | None, last: date | None) -> Call[Usage]:
    params = {"from": first and first.isoformat(), "to": last and last.isoformat()}
    return Call("GET", "/v1/usage", params=params)
