"""Audience studies: many viewers' recordings of one stimulus (an ad), each analysed as a job into a
per-second trace, reported per second with intervals, viewers as the unit (docs/studies.md).

A study belongs to the API key that made it, as jobs do; it is pinned to the emotion model (name and
version) of its first session, so its figures never mix models.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Annotated, get_args

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile

from service.api.deps import JobsDep, OwnerDep, ReadyRuntimeDep
from service.api.errors import ApiError
from service.api.routes.jobs import checked_kind, queue, utc
from service.api.routes.uploads import ERRORS
from service.jobs.store import NewJob
from service.jobs.worker import Jobs
from service.schemas import Emotion, ErrorResponse, ModelRef
from service.studies.chart import report_png
from service.studies.compare import compare_panels
from service.studies.export import report_csv, viewers_csv
from service.studies.models import (
    SessionAccepted,
    SessionInfo,
    SessionList,
    StudyComparison,
    StudyCreate,
    StudyInfo,
    StudyList,
    StudyReport,
)
from service.studies.report import FIGURES_VERSION, study_report, valid_panel
from service.studies.schema import Study
from service.studies.sessions import SESSION
from service.studies.store import ModelPinned, SessionView, StudyStore
from service.video.decode import ACCEPTED as CLIP_FORMATS

router = APIRouter(tags=["studies"])
EMOTIONS: tuple[str, ...] = get_args(Emotion)
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such study for this API key."}}
Threshold = Annotated[float, Query(ge=0.05, le=0.95, description="Probability at which a viewer counts as showing it.")]


def studies_of(jobs: JobsDep) -> StudyStore:
    return StudyStore(jobs.store.engine)


async def owned_study(store: StudyStore, owner: str, study_id: str) -> Study:
    study = await asyncio.to_thread(store.get, owner, study_id)
    if study is None:
        raise ApiError(404, "not_found", "no such study")
    return study


def study_info(study: Study) -> StudyInfo:
    model = ModelRef(name=study.model_name, version=study.model_version) if study.model_name else None
    return StudyInfo(
        study_id=study.id,
        name=study.name,
        stimulus_duration_s=study.stimulus_duration_s,
        events=study.events,
        created_at=utc(study.created_at),
        model=model,
    )


@router.post("/studies", status_code=201, response_model=StudyInfo)
async def create_study(new: StudyCreate, jobs: JobsDep, owner: OwnerDep, response: Response) -> StudyInfo:
    """A study of one stimulus: its length and, optionally, its events (for example "brand appears")."""
    study = await asyncio.to_thread(studies_of(jobs).create, owner, new)
    response.headers["Location"] = f"/v1/studies/{study.id}"
    return study_info(study)


@router.get("/studies", response_model=StudyList)
async def list_studies(jobs: JobsDep, owner: OwnerDep) -> StudyList:
    return StudyList(studies=[study_info(s) for s in await asyncio.to_thread(studies_of(jobs).all, owner)])


@router.get("/studies/compare", response_model=StudyComparison, responses=NOT_FOUND)
async def compare_studies(
    jobs: JobsDep,
    owner: OwnerDep,
    a: Annotated[str, Query(max_length=64)],
    b: Annotated[str, Query(max_length=64)],
    threshold: Threshold = 0.5,
) -> StudyComparison:
    """Per emotion: the difference in viewers who ever reached the threshold and in mean per-viewer
    probability, with intervals and p-values, and the seconds at which the share curves differ."""
    store = studies_of(jobs)
    first, second = await owned_study(store, owner, a), await owned_study(store, owner, b)
    if (first.model_name, first.model_version) != (second.model_name, second.model_version):
        raise ApiError(409, "models_differ", "the two studies were analysed with different emotion models")
    resamples = jobs.settings.study_bootstrap_resamples

    def compute() -> StudyComparison:
        panels = [valid_panel(s, store.views(s.id), EMOTIONS) for s in (first, second)]
        return StudyComparison(
            a=first.id,
            b=second.id,
            viewers=(panels[0].viewers, panels[1].viewers),
            threshold=threshold,
            figures_version=FIGURES_VERSION,
            emotions=compare_panels(*panels, threshold, resamples),
        )

    return await asyncio.to_thread(compute)


@router.get("/studies/{study_id}", response_model=StudyInfo, responses=NOT_FOUND)
async def get_study(study_id: str, jobs: JobsDep, owner: OwnerDep) -> StudyInfo:
    return study_info(await owned_study(studies_of(jobs), owner, study_id))


@router.delete("/studies/{study_id}", status_code=204, responses=NOT_FOUND)
async def delete_study(study_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Delete the study and every viewer's trace; sessions still waiting are cancelled and their uploads deleted."""
    job_ids = await asyncio.to_thread(studies_of(jobs).delete, owner, study_id)
    if job_ids is None:
        raise ApiError(404, "not_found", "no such study")
    for job_id in job_ids:
        await asyncio.to_thread(jobs.cancel, owner, job_id)
    return Response(status_code=204)


@router.post(
    "/studies/{study_id}/sessions",
    status_code=202,
    response_model=SessionAccepted,
    responses={**ERRORS, **NOT_FOUND, 409: {"model": ErrorResponse, "description": "Another model, or key reuse."}},
)
async def add_session(
    study_id: str,
    runtime: ReadyRuntimeDep,
    jobs: JobsDep,
    owner: OwnerDep,
    response: Response,
    file: Annotated[UploadFile, File(description=f"One viewer's recording ({CLIP_FORMATS}).")],
    viewer: Annotated[str | None, Form(max_length=256, description="Your pseudonymous id for the viewer.")] = None,
    offset_s: Annotated[float, Form(ge=0, le=3600, description="Where the stimulus starts in the recording.")] = 0.0,
    model: Annotated[str | None, Form(description="Emotion model for the study's first session.")] = None,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> SessionAccepted:
    """Queue one viewer's recording; it is analysed as a job (GET /v1/jobs/{job_id}) into a per-second trace,
    and deleted when the job ends."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    emotion = runtime.emotion(study.model_name or model)
    if study.model_name and model and model != study.model_name:
        raise ApiError(409, "study_model_pinned", f"this study's sessions are analysed with {study.model_name}")
    data = await file.read()
    if await checked_kind(runtime, data, runtime.settings.study_session_fps) != "video":
        runtime.metrics.rejected.labels("unsupported_type").inc()
        raise ApiError(415, "unsupported_type", f"a session is a recording ({CLIP_FORMATS}), not a photo")
    pinned = (emotion.name, emotion.stored.version)
    try:
        await asyncio.to_thread(store.pin_model, study.id, pinned)
    except ModelPinned as other:
        raise ApiError(409, "model_changed", f"{other}; the service now serves {pinned[0]}/{pinned[1]}") from None
    options = {
        "study_id": study.id,
        "session_id": uuid.uuid4().hex,
        "viewer": viewer,
        "offset_s": offset_s,
        "stimulus_duration_s": study.stimulus_duration_s,
        "model": pinned[0],
        "model_version": pinned[1],
    }
    digest = hashlib.sha256(data)
    digest.update(json.dumps([study.id, viewer, offset_s, pinned], sort_keys=True).encode())
    new = NewJob(
        owner=owner,
        kind=SESSION,
        options=options,
        request_digest=digest.hexdigest(),
        idempotency_key=idempotency_key,
    )
    job = await queue(jobs, new, data, response)
    await asyncio.to_thread(store.add_session, job)
    return SessionAccepted(session_id=job.options["session_id"], job_id=job.id, status="queued")


@router.get("/studies/{study_id}/sessions", response_model=SessionList, responses=NOT_FOUND)
async def list_sessions(study_id: str, jobs: JobsDep, owner: OwnerDep) -> SessionList:
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    views = await asyncio.to_thread(store.views, study.id)
    return SessionList(sessions=[session_info(v) for v in views])


def session_info(view: SessionView) -> SessionInfo:
    return SessionInfo(
        session_id=view.id,
        job_id=view.job_id,
        viewer=view.viewer,
        offset_s=view.offset_s,
        created_at=utc(view.created_at),
        status=view.status,
        reason=view.reason,
        presence=None if view.trace is None else round(view.trace.presence(), 4),
    )


async def computed_report(study_id: str, jobs: Jobs, owner: str, threshold: float) -> StudyReport:
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    resamples = jobs.settings.study_bootstrap_resamples
    return await asyncio.to_thread(lambda: study_report(study, store.views(study.id), EMOTIONS, threshold, resamples))


@router.get("/studies/{study_id}/report", response_model=StudyReport, responses=NOT_FOUND)
async def get_report(study_id: str, jobs: JobsDep, owner: OwnerDep, threshold: Threshold = 0.5) -> StudyReport:
    """Per second and per emotion, over the valid viewers: how many showed it, how strongly, how sure."""
    return await computed_report(study_id, jobs, owner, threshold)


@router.get("/studies/{study_id}/report.csv", responses=NOT_FOUND, response_class=Response)
async def get_report_csv(study_id: str, jobs: JobsDep, owner: OwnerDep, threshold: Threshold = 0.5) -> Response:
    report = await computed_report(study_id, jobs, owner, threshold)
    return csv_response(report_csv(report), f"study-{study_id}.csv")


@router.get("/studies/{study_id}/viewers.csv", responses=NOT_FOUND, response_class=Response)
async def get_viewers_csv(study_id: str, jobs: JobsDep, owner: OwnerDep, threshold: Threshold = 0.5) -> Response:
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    views = await asyncio.to_thread(store.views, study.id)
    return csv_response(viewers_csv(views, EMOTIONS, threshold), f"study-{study_id}-viewers.csv")


@router.get("/studies/{study_id}/report.png", responses=NOT_FOUND, response_class=Response)
async def get_report_png(study_id: str, jobs: JobsDep, owner: OwnerDep, threshold: Threshold = 0.5) -> Response:
    """The report's chart, for slide decks."""
    report = await computed_report(study_id, jobs, owner, threshold)
    return Response(await asyncio.to_thread(report_png, report), media_type="image/png")


def csv_response(text: str, filename: str) -> Response:
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=disposition)
