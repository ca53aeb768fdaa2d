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
from pydantic import TypeAdapter, ValidationError

from service.api.deps import IdempotencyKeyDep, JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile, StimuliDep
from service.api.errors import ApiError
from service.api.paging import Cursor, Limit, paged
from service.api.routes.uploads import ERRORS
from service.jobs.database import as_utc
from service.jobs.queue import Jobs
from service.jobs.submission import check_callback
from service.options import ATTRIBUTE_KEY, Attributes
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
    StudyNorms,
    StudyReport,
    StudySegments,
)
from service.studies.norms import NORMS_THRESHOLD, study_norms
from service.studies.report import study_report
from service.studies.reports import ReportPool
from service.studies.schema import Study
from service.studies.segments import segment_report, study_segments
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
SegmentKey = Annotated[str, Query(pattern=ATTRIBUTE_KEY, description="An attribute the sessions were sent with.")]
Segment = Annotated[
    str | None,
    Query(
        pattern=ATTRIBUTE_KEY[:-1] + ":.{1,64}$",
        description="KEY:VALUE: the report over the sessions whose attribute KEY is VALUE only.",
    ),
]
ATTRIBUTES = TypeAdapter(Attributes)
MOST_NORM_STUDIES = 200  # the newest of the category


SEGMENT_ERRORS = {
    **REPORT_ERRORS,
    409: {"model": ErrorResponse, "description": "The segment has fewer valid viewers than the privacy floor."},
}


def studies_of(jobs: JobsDep) -> StudyStore:
    return StudyStore(jobs.store.engine)


async def get_reports(request: Request) -> ReportPool:
    return request.app.state.reports


ReportsDep = Annotated[ReportPool, Depends(get_reports)]


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
        category=study.category,
        callback_url=study.callback_url,
        target_sessions=study.target_sessions,
        ready_at=as_utc(study.ready_at),
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
    if new.callback_url is not None:
        await check_callback(jobs, new.callback_url)
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
        return compare.compare_studies((first, second), views, EMOTIONS, threshold, jobs.settings.studies)

    fingerprints = [await asyncio.to_thread(store.fingerprint, s.id) for s in (first, second)]
    return await reports.compute(("compare", first.id, second.id, threshold, resamples, *fingerprints), compute)


@router.get("/studies/{study_id}", response_model=StudyInfo, responses=NOT_FOUND)
async def get_study(study_id: str, jobs: JobsDep, owner: OwnerDep) -> StudyInfo:
    return study_info(await owned_study(studies_of(jobs), owner, study_id))


@router.delete("/studies/{study_id}", status_code=204, responses=NOT_FOUND)
async def delete_study(study_id: str, jobs: JobsDep, owner: OwnerDep, stimuli: StimuliDep) -> Response:
    """Delete the study, its ad, its links and every viewer's trace; sessions still waiting are cancelled and
    their uploads deleted."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    job_ids = await asyncio.to_thread(store.delete, owner, study_id)
    if job_ids is None:
        raise ApiError(404, "not_found", "no such study")
    for job_id in job_ids:
        await asyncio.to_thread(jobs.cancel, owner, job_id)
    if study.stimulus_media is not None:
        await asyncio.to_thread(stimuli.delete, study.stimulus_media)
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
    attributes: Annotated[
        str | None,
        Form(
            max_length=4096,
            description='The respondent\'s own answers as a JSON object of strings, e.g. {"age": "25-34"}: at most '
            "16 keys (letters, digits, _ . -) of values up to 64 characters. Never inferred from the face.",
        ),
    ] = None,
    idempotency_key: IdempotencyKeyDep = None,
) -> SessionAccepted:
    """Queue one viewer's recording; it is analysed as a job (GET /v1/jobs/{job_id}) into a per-second trace,
    and deleted when the job ends."""
    answers = parsed_attributes(attributes)
    study = await owned_study(studies_of(jobs), owner, study_id)
    upload = SessionUpload(owner, await file.read(), viewer, offset_s, model, idempotency_key, answers)
    job, created, view = await submit_session(runtime, jobs, study, upload)
    if view is None:  # the study was deleted meanwhile
        raise ApiError(404, "not_found", "no such study")
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return SessionAccepted(session_id=view.id, job_id=job.id, status=view.status)


def parsed_attributes(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    try:
        return ATTRIBUTES.validate_json(text)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ApiError(422, "invalid_request", f"attributes{'.' + where if where else ''}: {problem['msg']}") from None


@router.delete("/studies/{study_id}/sessions/{session_id}", status_code=204, responses=NOT_FOUND)
async def delete_session(study_id: str, session_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Erase one viewer's session and trace (an erasure request); its analysis is cancelled if still waiting,
    and the reports change with it."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    row = await asyncio.to_thread(store.session_of, study.id, session_id)
    if row is None:
        raise ApiError(404, "not_found", "no such session in this study")
    if row.job_id is not None:  # first: an analysis under way then writes nothing
        await asyncio.to_thread(jobs.cancel, owner, row.job_id)
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
        attributes=view.attributes,
        **view.origin.model_dump(),
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


async def cached_report(
    study_id: str, jobs: Jobs, owner: str, reports: ReportPool, threshold: float, segment: str | None = None
) -> StudyReport:
    """The study's report at this threshold (over one segment, if named), computed once until a session
    changes; its forms render it."""
    settings = jobs.settings.studies

    def compute(study: Study, store: StudyStore) -> StudyReport:
        if segment is None:
            return study_report(study, store.views(study.id), EMOTIONS, threshold, settings)
        key, value = segment.split(":", 1)
        return segment_report(study, store.views(study.id), key, value, EMOTIONS, threshold, settings)

    return await study_output(study_id, jobs, owner, reports, f"report@{threshold}@{segment}", compute)


async def requested_report(
    study_id: str,
    jobs: JobsDep,
    owner: OwnerDep,
    reports: ReportsDep,
    threshold: Threshold = 0.5,
    segment: Segment = None,
) -> StudyReport:
    """The report a request names, which its forms (JSON, CSV, chart) render."""
    return await cached_report(study_id, jobs, owner, reports, threshold, segment)


RequestedReport = Annotated[StudyReport, Depends(requested_report)]


@router.get("/studies/{study_id}/report", response_model=StudyReport, responses=SEGMENT_ERRORS)
async def get_report(report: RequestedReport) -> StudyReport:
    """Per second and per emotion, over the valid viewers (of one segment, if named): how many showed it, how
    strongly, how sure."""
    return report


@router.get("/studies/{study_id}/segments", response_model=StudySegments, responses=REPORT_ERRORS)
async def get_segments(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, by: SegmentKey, threshold: Threshold = 0.5
) -> StudySegments:
    """One panel per value of a respondent attribute, with its viewer count, and the values compared with the
    same tests as two studies. Segments under the privacy floor are listed without figures."""

    def compute(study: Study, store: StudyStore) -> StudySegments:
        return study_segments(study, store.views(study.id), by, EMOTIONS, threshold, jobs.settings.studies)

    return await study_output(study_id, jobs, owner, reports, f"segments@{threshold}@{by}", compute)


@router.get("/studies/{study_id}/norms", response_model=StudyNorms, responses=REPORT_ERRORS)
async def get_norms(study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep) -> StudyNorms:
    """The study's headline figures among this key's other studies of its category on the same model, as
    percentiles, from `EMOTION_STUDY_NORMS_MIN_STUDIES` studies on."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    report = await cached_report(study.id, jobs, owner, reports, NORMS_THRESHOLD)
    others = []
    if study.category is not None and study.model_name is not None:
        for other in await asyncio.to_thread(store.in_category, study, MOST_NORM_STUDIES):
            other_report = await cached_report(other.id, jobs, owner, reports, NORMS_THRESHOLD)
            if other_report.sessions.valid:
                others.append(other_report)
    return study_norms(report, study.category, others, jobs.settings.studies.norms_min_studies)


@router.get("/studies/{study_id}/report.csv", responses=SEGMENT_ERRORS, response_class=Response)
async def get_report_csv(report: RequestedReport, reports: ReportsDep) -> Response:
    return csv_response(await reports.run(lambda: report_csv(report)), f"study-{report.study_id}.csv")


@router.get("/studies/{study_id}/viewers.csv", responses=REPORT_ERRORS, response_class=Response)
async def get_viewers_csv(
    study_id: str, jobs: JobsDep, owner: OwnerDep, reports: ReportsDep, threshold: Threshold = 0.5
) -> Response:
    def render(study: Study, store: StudyStore) -> str:
        return viewers_csv(store.views(study.id), EMOTIONS, threshold, jobs.settings.studies.smile_threshold)

    text = await study_output(study_id, jobs, owner, reports, f"viewers@{threshold}", render)
    return csv_response(text, f"study-{study_id}-viewers.csv")


@router.get("/studies/{study_id}/report.png", responses=SEGMENT_ERRORS, response_class=Response)
async def get_report_png(report: RequestedReport, reports: ReportsDep) -> Response:
    """The report's chart, for slide decks."""
    return Response(await reports.run(lambda: report_png(report)), media_type="image/png")


def csv_response(text: str, filename: str) -> Response:
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=disposition)
