"""Putting work on the queue: the media checked now as the synchronous endpoint would check it (bad
media is never queued), the callback checked, the request's digest for its idempotency key, and the
job stored with its upload."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Literal

from pydantic import BaseModel

from service.answers import opened_clip
from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image, sniff_container, sniff_format
from service.jobs.queue import Jobs
from service.jobs.schema import PHOTO, QUEUED, SESSION, Job
from service.jobs.store import NewJob, QuotaExceeded
from service.jobs.webhooks import check_url, safe_address
from service.ops.quotas import NO_KEYS
from service.runtime import Runtime
from service.video.decode import ACCEPTED as CLIP_FORMATS
from service.video.decode import ClipInfo


class WebhooksOff(Exception):
    """A callback was asked for, but this service has no secret to sign webhooks with."""


async def check_callback(jobs: Jobs, url: str) -> None:
    """UnsafeTarget for a URL webhooks may not reach (resolved now, and again at every attempt)."""
    webhooks = jobs.settings.webhooks
    if not webhooks.secret:
        raise WebhooksOff("this service has no webhook secret; poll the job instead")
    _, host, port = check_url(url)
    await safe_address(host, port, webhooks.allow_private)


async def checked_clip(runtime: Runtime, data: bytes, fps: float) -> ClipInfo:
    """A clip checked now as /v1/video would, to its first frame (ImageRejected if it fails): what it declares."""
    clip = await opened_clip(runtime, data, fps)
    try:
        if not await asyncio.to_thread(clip.first_frame_decodes):
            runtime.metrics.rejected.labels("undecodable").inc()
            raise ImageRejected(400, "undecodable", "no frame of the clip could be decoded")
        return clip.info
    finally:
        clip.close()


async def checked_kind(runtime: Runtime, data: bytes, fps: float) -> Literal["video", "photo"]:
    """A clip or a photo, checked now as the synchronous endpoint would (ImageRejected if not)."""
    if sniff_container(data) is not None:
        await checked_clip(runtime, data, fps)
        return "video"
    if sniff_format(data) is not None or not data:
        s = runtime.settings
        try:
            await asyncio.to_thread(decode_image, data, s.max_file_bytes, s.max_image_pixels)
        except ImageRejected as rejection:
            runtime.metrics.rejected.labels(rejection.reason).inc()
            raise
        return "photo"
    runtime.metrics.rejected.labels("unsupported_type").inc()
    raise ImageRejected(415, "unsupported_type", f"not a clip ({CLIP_FORMATS}) or a photo")


def request_digest(data: bytes, kind: str, options: BaseModel, *more: object) -> str:
    """What an idempotency key stands for: the media, its kind, its options and anything else asked."""
    digest = hashlib.sha256(data)
    digest.update(json.dumps([kind, options.model_dump(mode="json"), *more], sort_keys=True).encode())
    return digest.hexdigest()


async def queue(jobs: Jobs, new: NewJob, data: bytes) -> tuple[Job, bool]:
    """The job stored with its upload (True), or the one its idempotency key already made (False);
    IdempotencyConflict for a key reused with another request, QuotaExceeded past the key's quota (a
    clip or a recording also past its daily media seconds; a replay is answered whatever the quota)."""
    quota = jobs.settings.quotas if new.owner != NO_KEYS else None
    try:
        if new.kind != PHOTO and not await asyncio.to_thread(jobs.store.by_key, new.owner, new.idempotency_key):
            await asyncio.to_thread(jobs.usage.check_media_quota, new.owner)
        job, created = await asyncio.to_thread(
            jobs.store.create, new, len(data), lambda job_id: jobs.media.save(job_id, data), jobs.media.delete, quota
        )
    except QuotaExceeded as exceeded:
        jobs.quotas.refused(new.owner, exceeded.limit)
        raise
    if created:
        jobs.metrics.jobs.labels(QUEUED).inc()
        jobs.usage.add(new.owner, **({"study_sessions": 1} if new.kind == SESSION else {"jobs": 1}))
    return job, created
