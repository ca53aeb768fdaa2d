"""Asynchronous jobs: POST /v1/jobs with a clip or photo, then GET its status and result, or be called
back. A job's result is the very body the synchronous endpoint (/v1/video or /v1/predict) returns.

Each job belongs to the API key that made it (its digest, never the key itself): another key's job
answers 404. `Idempotency-Key` makes a retried submission return the job the first one made.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.api.deps import IdempotencyKeyDep, JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile
from service.api.errors import ApiError
from service.api.paging import Cursor, Limit, paged
from service.api.routes.uploads import ERRORS
from service.jobs.database import as_utc
from service.jobs.queue import Jobs
from service.jobs.schema import STATES, VIDEO, Job
from service.jobs.store import NewJob
from service.jobs.submission import check_callback, checked_kind, queue, request_digest
from service.options import (
    DESCRIPTORS_HELP,
    FPS_HELP,
    FPS_RANGE,
    SMOOTHING_HELP,
    SMOOTHING_RANGE,
    ClipJob,
    ClipOptions,
    PhotoJob,
)
from service.results import safe_filename
from service.schemas import ErrorResponse, JobAccepted, JobList, JobStatus, JobWebhook, Links
from service.video.decode import ACCEPTED as CLIP_FORMATS

router = APIRouter(tags=["jobs"])
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such job for this API key."}}


@dataclass(frozen=True)
class JobRequest:
    """A job's options, each as a form field or a query parameter (the form wins)."""

    clip: ClipOptions
    model: str | None
    callback_url: str | None
    tag: str | None


def job_request(
    fps: Annotated[float | None, Form(**FPS_RANGE, description=f"Clips: {FPS_HELP}")] = None,
    smoothing: Annotated[float | None, Form(**SMOOTHING_RANGE, description=f"Clips: {SMOOTHING_HELP}")] = None,
    descriptors: Annotated[bool | None, Form(description=DESCRIPTORS_HELP)] = None,
    model: Annotated[str | None, Form(description="Emotion model; default: the service's.")] = None,
    callback_url: Annotated[str | None, Form(max_length=2048, description="Where to POST the signed event.")] = None,
    tag: Annotated[str | None, Form(max_length=256, description="Your own reference, returned as is.")] = None,
    fps_query: Annotated[float | None, Query(alias="fps", **FPS_RANGE)] = None,
    smoothing_query: Annotated[float | None, Query(alias="smoothing", **SMOOTHING_RANGE)] = None,
    descriptors_query: Annotated[bool | None, Query(alias="descriptors")] = None,
    model_query: Annotated[str | None, Query(alias="model")] = None,
    callback_url_query: Annotated[str | None, Query(alias="callback_url", max_length=2048)] = None,
    tag_query: Annotated[str | None, Query(alias="tag", max_length=256)] = None,
) -> JobRequest:
    clip = {
        "fps": first(fps, fps_query),
        "smoothing": first(smoothing, smoothing_query),
        "descriptors": first(descriptors, descriptors_query),
    }
    return JobRequest(
        clip=ClipOptions(**{name: value for name, value in clip.items() if value is not None}),
        model=first(model, model_query),
        callback_url=first(callback_url, callback_url_query),
        tag=first(tag, tag_query),
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
    asked: Annotated[JobRequest, Depends(job_request)],
    idempotency_key: IdempotencyKeyDep = None,
) -> JobAccepted:
    """Queue a clip or photo for analysis; answers at once with the job's id."""
    runtime.emotion(asked.model)  # an unknown model is refused now, not when the job runs
    if asked.callback_url is not None:
        await check_callback(jobs, asked.callback_url)
    data = await file.read()
    kind = await checked_kind(runtime, data, asked.clip.fps)
    if kind == VIDEO:
        options: BaseModel = ClipJob(**asked.clip.model_dump(), model=asked.model)
    else:
        options = PhotoJob(model=asked.model, descriptors=asked.clip.descriptors)
    new = NewJob(
        owner=owner,
        kind=kind,
        options=options.model_dump(mode="json"),
        request_digest=request_digest(data, kind, options, asked.callback_url, asked.tag),
        filename=safe_filename(file.filename),
        tag=asked.tag,
        idempotency_key=idempotency_key,
        callback_url=asked.callback_url,
    )
    job = await queued(jobs, new, data, response)
    return JobAccepted(
        job_id=job.id,
        status=job.status,
        tag=job.tag,
        created_at=as_utc(job.created_at),
        links=Links(self=f"/v1/jobs/{job.id}"),
    )


async def queued(jobs: Jobs, new: NewJob, data: bytes, response: Response) -> Job:
    """Queue the job: 202 for a new one, 200 for the one its Idempotency-Key already made; either way,
    Location points at the job."""
    job, created = await queue(jobs, new, data)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def job_status(job: Job, with_result: bool = True) -> JobStatus:
    webhook = None
    if job.callback_url:
        webhook = JobWebhook(
            url=job.callback_url,
            status=webhook_state(job),
            attempts=job.webhook_attempts,
            last_status=job.webhook_last_status,
            delivered_at=as_utc(job.webhook_delivered_at),
            next_attempt_at=as_utc(job.webhook_next_at),
            given_up_at=as_utc(job.webhook_given_up_at),
        )
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return JobStatus(
        job_id=job.id,
        status=job.status,
        kind=job.kind,
        tag=job.tag,
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at),
        finished_at=as_utc(job.finished_at),
        attempts=job.attempts,
        interruptions=job.interruptions or 0,
        claims=job.claims or [],
        error=error,
        webhook=webhook,
        result=json.loads(job.result) if with_result and job.result else None,
        links=Links(self=f"/v1/jobs/{job.id}"),
    )


def webhook_state(job: Job) -> str:
    if job.webhook_delivered_at is not None:
        return "delivered"
    if job.webhook_given_up_at is not None:
        return "gave_up"
    return "failed" if job.webhook_attempts else "pending"


@router.post(
    "/jobs/{job_id}/webhook/redeliver",
    status_code=202,
    response_model=JobStatus,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "No event to send, or one under way."}},
)
async def redeliver_webhook(job_id: str, jobs: JobsDep, owner: OwnerDep) -> JobStatus:
    """Send a finished job's event to its callback_url again, now, with the same `webhook-id` and a fresh
    retry schedule: after the receiver was down past the retries, or lost what it received."""
    job = await asyncio.to_thread(jobs.store.redeliver, owner, job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job")
    return job_status(job)


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
    kind: Annotated[Literal["photo", "video", "session"] | None, Query(description="Only jobs of this kind.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JobList:
    """This key's jobs, newest first, without their results; `next_cursor` fetches the next page."""
    page = await paged(lambda: jobs.store.page(owner, status, tag, limit, cursor, kind))
    return JobList(jobs=[job_status(j, with_result=False) for j in page.jobs], next_cursor=page.next_cursor)


@router.delete("/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
async def cancel_job(job_id: str, jobs: JobsDep, owner: OwnerDep) -> JSONResponse:
    """Cancel a queued or running job and delete its upload and result; a finished job is left as it is."""
    job = await asyncio.to_thread(jobs.cancel, owner, job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job")
    return JSONResponse(job_status(job).model_dump(mode="json"))
