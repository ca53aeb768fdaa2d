"""Audience studies: many viewers' recordings of one stimulus (an ad), each analysed as a job into a
per-second trace, reported per second with intervals, viewers as the unit (docs/studies.md).

A study belongs to the API key that made it, as jobs do; it is pinned to the emotion model (name and
version) of its first session, so its figures never mix models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar, get_args

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from service.api.deps import IdempotencyKeyDep, JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile
from service.api.errors import ApiError
from service.api.routes.uploads import ERRORS
from service.jobs.database import as_utc
from service.jobs.queue import Jobs
from service.schemas import Emotion, ErrorResponse, ModelRef
from service.studies import compare
from service.studies.chart import report_png
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
from service.studies.report import study_report
from service.studies.reports import ReportPool
from service.studies.schema import Study
from service.studies.sessions import SessionUpload, submit_session
from service.studies.store import SessionView, StudyStore
from service.video.decode import ACCEPTED as CLIP_FORMATS

T = TypeVar("T")
router = APIRouter(tags=["studies"])
EMOTIONS: tuple[str, ...] = get_args(Emotion)
NOT_FOUND = {404: {"model": ErrorResponse, "description": "No such study for this API key."}}
REPORT_ERRORS = {
    **NOT_FOUND,
    503: {"model": ErrorResponse, "description": "Study reports are at capacity; see Retry-After."},
}
Threshold = Annotated[float, Query(ge=0.05, le=0.95, description="Probability at which a viewer counts as showing it.")]


Limit = Annotated[int, Query(ge=1, le=100, description="Most items on one page.")]
Cursor = Annotated[str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")]


def studies_of(jobs: JobsDep) -> StudyStore:
    return StudyStore(jobs.store.engine)


async def get_reports(request: Request) -> ReportPool:
    return request.app.state.reports


ReportsDep = Annotated[ReportPool, Depends(get_reports)]


async def paged(page: Callable[[], T]) -> T:
    """A store's page, off the event loop; a cursor it did not give out is a 422."""
    try:
        return await asyncio.to_thread(page)
    except ValueError:
        raise ApiError(422, "invalid_request", "cursor: not a cursor this service gave out") from None


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
        created_at=as_utc(study.created_at),
        model=model,
    )


@router.post("/studies", status_code=201, response_model=StudyInfo)
async def create_study(new: StudyCreate, jobs: JobsDep, owner: OwnerDep, response: Response) -> StudyInfo:
    """A study of one stimulus: its length and, optionally, its events (for example "brand appears")."""
    longest = jobs.settings.studies.longest_s
    if new.stimulus_duration_s > longest:
        raise ApiError(
            422,
            "invalid_request",
            f"stimulus_duration_s: at most {longest:g} s, the longest recording a session may be",
        )
    study = await asyncio.to_thread(studies_of(jobs).create, owner, new)
    response.headers["Location"] = f"/v1/studies/{study.id}"
    return study_info(study)


@router.get("/studies", response_model=StudyList)
async def list_studies(jobs: JobsDep, owner: OwnerDep, limit: Limit = 20, cursor: Cursor = None) -> StudyList:
    """This key's studies, newest first; `next_cursor` fetches the next page."""
    studies, next_cursor = await paged(lambda: studies_of(jobs).page(owner, limit, cursor))
    return StudyList(studies=[study_info(s) for s in studies], next_cursor=next_cursor)


@router.get("/studies/compare", response_model=StudyComparison, responses=REPORT_ERRORS)
async def compare_studies(
    jobs: JobsDep,
    owner: OwnerDep,
    reports: ReportsDep,
    a: Annotated[str, Query(max_length=64)],
    b: Annotated[str, Query(max_length=64)],
    threshold: Threshold = 0.5,
) -> StudyComparison:
    """Per emotion: the difference in viewers who ever reached the threshold and in mean per-viewer
    probability, with intervals and p-values, and the seconds at which the share curves differ."""
    store = studies_of(jobs)
    first, second = await owned_study(store, owner, a), await owned_study(store, owner, b)
    for study in (first, second):
        if study.model_name is None:
            raise compare.EmptyStudy(f"study {study.id} has no session yet")
    if (first.model_name, first.model_version) != (second.model_name, second.model_version):
        raise ApiError(409, "models_differ", "the two studies were analysed with different emotion models")
    resamples = jobs.settings.studies.bootstrap_resamples

    def compute() -> StudyComparison:
        views = (store.views(first.id), store.views(second.id))
        return compare.compare_studies((first, second), views, EMOTIONS, threshold, resamples)

    fingerprints = [await asyncio.to_thread(store.fingerprint, s.id) for s in (first, second)]
    return await reports.compute(("compare", first.id, second.id, threshold, resamples, *fingerprints), compute)


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
    responses={
        **ERRORS,
        **NOT_FOUND,
        409: {"model": ErrorResponse, "description": "Another model, a viewer seen before, or key reuse."},
    },
    dependencies=[SingleFile],
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
    idempotency_key: IdempotencyKeyDep = None,
) -> SessionAccepted:
    """Queue one viewer's recording; it is analysed as a job (GET /v1/jobs/{job_id}) into a per-second trace,
    and deleted when the job ends."""
    study = await owned_study(studies_of(jobs), owner, study_id)
    upload = SessionUpload(owner, await file.read(), viewer, offset_s, model, idempotency_key)
    job, created, view = await submit_session(runtime, jobs, study, upload)
    if view is None:  # the study was deleted meanwhile
        raise ApiError(404, "not_found", "no such study")
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return SessionAccepted(session_id=view.id, job_id=job.id, status=view.status)


@router.delete("/studies/{study_id}/sessions/{session_id}", status_code=204, responses=NOT_FOUND)
async def delete_session(study_id: str, session_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Erase one viewer's session and trace (an erasure request); its analysis is cancelled if still waiting,
    and the reports change with it."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    job_id = await asyncio.to_thread(store.session_job, study.id, session_id)
    if job_id is None:
        raise ApiError(404, "not_found", "no such session in this study")
    await asyncio.to_thread(jobs.cancel, owner, job_id)  # first: an analysis under way then writes nothing
    await asyncio.to_thread(store.delete_session, session_id)
    return Response(status_code=204)


@router.get("/studies/{study_id}/sessions", response_model=SessionList, responses=NOT_FOUND)
async def list_sessions(
    study_id: str, jobs: JobsDep, owner: OwnerDep, limit: Limit = 100, cursor: Cursor = None
) -> SessionList:
    """The study's sessions in upload order; `next_cursor` fetches the next page."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    views, next_cursor = await paged(lambda: store.views_page(study.id, limit, cursor))
    return SessionList(sessions=[session_info(v) for v in views], next_cursor=next_cursor)


def session_info(view: SessionView) -> SessionInfo:
    return SessionInfo(
        session_id=view.id,
        job_id=view.job_id,
        viewer=view.viewer,
        offset_s=view.offset_s,
        created_at=as_utc(view.created_at),
        status=view.status,
        reason=view.reason,
        presence=None if view.trace is None else round(view.trace.presence(), 4),
    )


async def study_output(
    study_id: str, jobs: Jobs, owner: str, reports: ReportPool, form: str, render: Callable[[Study, StudyStore], T]
) -> T:
    """A study's report in one form (the report itself, a CSV, a chart), computed in the report pool and
    cached until one of the study's sessions changes."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    fingerprint = await asyncio.to_thread(store.fingerprint, study.id)
    return await reports.compute((form, study.id, fingerprint), lambda: render(study, store))


async def cached_report(study_id: str, jobs: Jobs, owner: str, reports: ReportPool, threshold: float) -> StudyReport:
    """The study's report at this threshold, computed once until a session changes; its forms render it."""

    def compute(study: Study, store: StudyStore) -> StudyReport:
        return study_report(study, store.views(study.id), EMOTIONS, threshold, jobs.settings.studies)

    return await study_output(study_id, jobs, owner, reports, f"report@{threshold}", compute)


@router.get("/studies/{study_id}/report", response_model=StudyReport, responses=REPORT_ERRORS)
async def get_report(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, threshold: Threshold = 0.5
) -> StudyReport:
    """Per second and per emotion, over the valid viewers: how many showed it, how strongly, how sure."""
    return await cached_report(study_id, jobs, owner, reports, threshold)


@router.get("/studies/{study_id}/report.csv", responses=REPORT_ERRORS, response_class=Response)
async def get_report_csv(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, threshold: Threshold = 0.5
) -> Response:
    report = await cached_report(study_id, jobs, owner, reports, threshold)
    return csv_response(await reports.run(lambda: report_csv(report)), f"study-{study_id}.csv")


@router.get("/studies/{study_id}/viewers.csv", responses=REPORT_ERRORS, response_class=Response)
async def get_viewers_csv(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, threshold: Threshold = 0.5
) -> Response:
    def render(study: Study, store: StudyStore) -> str:
        return viewers_csv(store.views(study.id), EMOTIONS, threshold)

    text = await study_output(study_id, jobs, owner, reports, f"viewers@{threshold}", render)
    return csv_response(text, f"study-{study_id}-viewers.csv")


@router.get("/studies/{study_id}/report.png", responses=REPORT_ERRORS, response_class=Response)
async def get_report_png(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, threshold: Threshold = 0.5
) -> Response:
    """The report's chart, for slide decks."""
    report = await cached_report(study_id, jobs, owner, reports, threshold)
    return Response(await reports.run(lambda: report_png(report)), media_type="image/png")


def csv_response(text: str, filename: str) -> Response:
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=disposition)
