"""Asynchronous jobs: POST /v1/jobs with a clip or photo, then GET its status and result, or be called
back. A job's result is the very body the synchronous endpoint (/v1/video or /v1/predict) returns.

Each job belongs to the API key that made it (its digest, never the key itself): another key's job
answers 404. `Idempotency-Key` makes a retried submission return the job the first one made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from service.answers import opened_clip
from service.api.deps import IdempotencyKeyDep, JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile
from service.api.errors import ApiError
from service.api.routes.uploads import ERRORS
from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image, sniff_container, sniff_format
from service.inference.results import safe_filename
from service.jobs.schema import STATES, Job
from service.jobs.store import IdempotencyConflict, NewJob
from service.jobs.webhooks import UnsafeTarget, check_url, safe_address
from service.jobs.worker import Jobs
from service.runtime import Runtime
from service.schemas import ErrorResponse, JobAccepted, JobList, JobStatus, JobWebhook, Links
from service.video.decode import ACCEPTED as CLIP_FORMATS

router = APIRouter(tags=["jobs"])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such job for this API key."}}


@dataclass(frozen=True)
class JobOptions:
    fps: float
    smoothing: float
    model: str | None
    callback_url: str | None
    tag: str | None


def job_options(
    fps: Annotated[float | None, Form(ge=0.2, le=120, description="Clips: frames analysed per second.")] = None,
    smoothing: Annotated[float | None, Form(ge=0, le=60, description="Clips: seconds of smoothing.")] = None,
    model: Annotated[str | None, Form(description="Emotion model; default: the service's.")] = None,
    callback_url: Annotated[str | None, Form(max_length=2048, description="Where to POST the signed event.")] = None,
    tag: Annotated[str | None, Form(max_length=256, description="Your own reference, returned as is.")] = None,
    fps_query: Annotated[float | None, Query(alias="fps", ge=0.2, le=120)] = None,
    smoothing_query: Annotated[float | None, Query(alias="smoothing", ge=0, le=60)] = None,
    model_query: Annotated[str | None, Query(alias="model")] = None,
    callback_url_query: Annotated[str | None, Query(alias="callback_url", max_length=2048)] = None,
    tag_query: Annotated[str | None, Query(alias="tag", max_length=256)] = None,
) -> JobOptions:
    """Each option as a form field or a query parameter (the form wins), defaults as /v1/video's."""
    return JobOptions(
        fps=first(fps, fps_query, 5.0),
        smoothing=first(smoothing, smoothing_query, 1.0),
        model=first(model, model_query, None),
        callback_url=first(callback_url, callback_url_query, None),
        tag=first(tag, tag_query, None),
    )


def first(*values):
    return next((v for v in values if v is not None), None)


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={
        **ERRORS,
        200: {"model": JobAccepted, "description": "The job this Idempotency-Key already made."},
        409: {"model": ErrorResponse, "description": "The Idempotency-Key was used for a different request."},
    },
    dependencies=[SingleFile],
)
async def submit(
    response: Response,
    runtime: ReadyRuntimeDep,
    jobs: JobsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description=f"A clip ({CLIP_FORMATS}) or a photo.")],
    options: Annotated[JobOptions, Depends(job_options)],
    idempotency_key: IdempotencyKeyDep = None,
) -> JobAccepted:
    """Queue a clip or photo for analysis; answers at once with the job's id."""
    runtime.emotion(options.model)  # an unknown model is refused now, not when the job runs
    if options.callback_url is not None:
        await check_callback(options.callback_url, jobs)
    data = await file.read()
    kind = await checked_kind(runtime, data, options.fps)
    settings = {"fps": options.fps, "smoothing": options.smoothing, "model": options.model}
    digest = hashlib.sha256(data)
    digest.update(json.dumps([kind, settings, options.callback_url, options.tag], sort_keys=True).encode())
    new = NewJob(
        owner=owner,
        kind=kind,
        options=settings,
        request_digest=digest.hexdigest(),
        filename=safe_filename(file.filename),
        tag=options.tag,
        idempotency_key=idempotency_key,
        callback_url=options.callback_url,
    )
    job = await queue(jobs, new, data, response)
    return JobAccepted(
        job_id=job.id,
        status=job.status,
        tag=job.tag,
        created_at=utc(job.created_at),
        links=Links(self=f"/v1/jobs/{job.id}"),
    )


async def queue(jobs: Jobs, new: NewJob, data: bytes, response: Response) -> Job:
    """Create the job with its upload saved (202), or find the one its Idempotency-Key already made (200);
    a key reused for another request is a 409. Either way, Location points at the job."""
    try:
        job, created = await asyncio.to_thread(
            jobs.store.create, new, lambda job_id: jobs.media.save(job_id, data), jobs.media.delete
        )
    except IdempotencyConflict:
        raise ApiError(409, "idempotency_conflict", "this Idempotency-Key was used for a different request") from None
    if created:
        jobs.metrics.jobs.labels("queued").inc()
    else:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


async def check_callback(url: str, jobs: Jobs) -> None:
    if not jobs.settings.webhook_secret.get_secret_value():
        raise ApiError(422, "webhooks_not_configured", "this service has no webhook secret; poll the job instead")
    try:
        _, host, port = check_url(url)
        await safe_address(host, port, jobs.settings.webhook_allow_private)
    except UnsafeTarget as unsafe:
        raise ApiError(422, "unsafe_callback_url", str(unsafe)) from None


async def checked_kind(runtime: Runtime, data: bytes, fps: float) -> Literal["video", "photo"]:
    """A clip or a photo, checked now as the synchronous endpoint would (bad media is never queued)."""
    if sniff_container(data) is not None:
        clip = await opened_clip(runtime, data, fps)
        try:
            if not await asyncio.to_thread(clip.first_frame_decodes):
                runtime.metrics.rejected.labels("undecodable").inc()
                raise ImageRejected(400, "undecodable", "no frame of the clip could be decoded")
        finally:
            clip.close()
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


def utc(moment: datetime | None) -> datetime | None:
    """The store's naive UTC times, marked as UTC for clients."""
    return None if moment is None else moment.replace(tzinfo=UTC)


def job_status(job: Job, with_result: bool = True) -> JobStatus:
    webhook = None
    if job.callback_url:
        webhook = JobWebhook(
            url=job.callback_url,
            attempts=job.webhook_attempts,
            last_status=job.webhook_last_status,
            delivered_at=utc(job.webhook_delivered_at),
            next_attempt_at=utc(job.webhook_next_at),
            given_up_at=utc(job.webhook_given_up_at),
        )
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return JobStatus(
        job_id=job.id,
        status=job.status,
        kind=job.kind,
        tag=job.tag,
        created_at=utc(job.created_at),
        started_at=utc(job.started_at),
        finished_at=utc(job.finished_at),
        attempts=job.attempts,
        error=error,
        webhook=webhook,
        result=json.loads(job.result) if with_result and job.result else None,
        links=Links(self=f"/v1/jobs/{job.id}"),
    )


@router.get("/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
async def get_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> JobStatus:
    """A job's state and, once it has succeeded, its result."""
    job = await asyncio.to_thread(jobs.store.get, owner, job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job")
    return job_status(job)


@router.get("/jobs", response_model=JobList)
async def list_jobs(
    jobs: JobsDep,
    owner: OwnerDep,
    status: Annotated[Literal[STATES] | None, Query()] = None,  # type: ignore[valid-type]
    tag: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    """This key's jobs, newest first, without their results; `next_cursor` fetches the next page."""
    try:
        page = await asyncio.to_thread(jobs.store.page, owner, status, tag, limit, cursor)
    except ValueError:
        raise ApiError(422, "invalid_request", "cursor: not a cursor this service gave out") from None
    return JobList(jobs=[job_status(j, with_result=False) for j in page.jobs], next_cursor=page.next_cursor)


@router.delete("/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
async def cancel_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> JSONResponse:
    """Cancel a queued or running job and delete its upload and result; a finished job is left as it is."""
    job = await asyncio.to_thread(jobs.cancel, owner, job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job")
    return JSONResponse(job_status(job).model_dump(mode="json"))
