"""A study's ad and its participant links, for the key holder: upload the stimulus, make links to send
to a panel, list them with what respondents did, revoke one (docs/studies.md, "Run an ad test")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from service.api.deps import JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile, StimuliDep
from service.api.errors import ApiError
from service.api.routes.studies import NOT_FOUND, owned_study, studies_of
from service.api.routes.uploads import ERRORS
from service.inference.errors import UnknownModel
from service.jobs.database import as_utc
from service.jobs.media import MediaStore
from service.schemas import ErrorResponse
from service.studies.links import LinkSigner, LinkStore, LinkView
from service.studies.models import LinkCreate, LinkInfo, LinkList, StimulusOut
from service.studies.on_device import device_model
from service.studies.schema import Study
from service.studies.stimulus import RangeNotSatisfiable, byte_range, keep_stimulus
from service.video.decode import ACCEPTED as CLIP_FORMATS

router = APIRouter(tags=["studies"])
CHUNK_BYTES = 1 << 20


async def get_signer(request: Request) -> LinkSigner:
    return request.app.state.link_signer


SignerDep = Annotated[LinkSigner, Depends(get_signer)]
RangeHeader = Annotated[str | None, Header(include_in_schema=False)]


@router.put(
    "/studies/{study_id}/stimulus",
    response_model=StimulusOut,
    responses={**ERRORS, **NOT_FOUND, 409: {"model": ErrorResponse, "description": "Its length is not the study's."}},
    dependencies=[SingleFile],
)
async def put_stimulus(
    study_id: str,
    runtime: ReadyRuntimeDep,
    jobs: JobsDep,
    owner: OwnerDep,
    stimuli: StimuliDep,
    file: Annotated[UploadFile, File(description=f"The ad ({CLIP_FORMATS}; MP4 or WebM play in every browser).")],
) -> StimulusOut:
    """The ad the study's links play, kept until the study is deleted; its length must be the study's
    `stimulus_duration_s`, within 0.5 s."""
    store = studies_of(jobs)
    study = await owned_study(store, owner, study_id)
    kept = await keep_stimulus(runtime, stimuli, store, study, await file.read())
    return StimulusOut(**kept.__dict__)


@router.get("/studies/{study_id}/stimulus", response_class=Response, responses=NOT_FOUND)
async def get_stimulus(
    study_id: str, jobs: JobsDep, owner: OwnerDep, stimuli: StimuliDep, range: RangeHeader = None
) -> Response:
    """The ad, with byte ranges for players."""
    return stimulus_response(await owned_study(studies_of(jobs), owner, study_id), stimuli, range)


def stimulus_response(study: Study, stimuli: MediaStore, range_header: str | None) -> Response:
    """The whole stimulus, or the one byte range asked for (206); 416 for a range past its end."""
    if study.stimulus_media is None:
        raise ApiError(404, "no_stimulus", "this study has no stimulus yet: PUT /v1/studies/{id}/stimulus")
    size = study.stimulus_bytes
    try:
        span = byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span or (0, size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "Cache-Control": "private, max-age=3600",
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    chunks = stimulus_chunks(stimuli, study.stimulus_media, start, end)
    return StreamingResponse(chunks, 206 if span else 200, headers, media_type=study.stimulus_type)


async def stimulus_chunks(stimuli: MediaStore, location: str, start: int, end: int) -> AsyncIterator[bytes]:
    for offset in range(start, end + 1, CHUNK_BYTES):
        yield await asyncio.to_thread(stimuli.read_range, location, offset, min(CHUNK_BYTES, end + 1 - offset))


def link_info(view: LinkView, signer: LinkSigner) -> LinkInfo:
    link = view.link
    return LinkInfo(
        link_id=link.id,
        url=f"/watch/{signer.token(link.id, link.study_id)}",
        mode=link.mode,
        return_url=link.return_url,
        expires_at=as_utc(link.expires_at),
        revoked_at=as_utc(link.revoked_at),
        max_sessions=link.max_sessions,
        sessions=view.sessions,
        opened=link.opened,
        declined=link.declined,
        screened_out=link.screened_out,
        errors=link.errors,
    )


@router.post(
    "/studies/{study_id}/links",
    status_code=201,
    response_model=LinkInfo,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The study has no stimulus yet."}},
)
async def create_link(
    study_id: str,
    new: LinkCreate,
    jobs: JobsDep,
    owner: OwnerDep,
    signer: SignerDep,
    runtime: ReadyRuntimeDep,
    response: Response,
) -> LinkInfo:
    """A participant link: send its `url` to a panel, with `?viewer=ID` and the respondents' own answers
    as `a.KEY=VALUE`."""
    study = await owned_study(studies_of(jobs), owner, study_id)
    if study.stimulus_media is None:
        raise ApiError(409, "no_stimulus", "upload the ad first: PUT /v1/studies/{id}/stimulus")
    if new.mode != "upload":
        try:
            device_model(runtime, study, runtime.settings.links.device_model)
        except UnknownModel:
            wanted = study.model_name or runtime.settings.links.device_model
            message = f"on-device links run {wanted}, which this service does not serve"
            raise ApiError(422, "mode_unavailable", message) from None
    store = LinkStore(jobs.store.engine)
    link = await asyncio.to_thread(store.create, study, new.mode, new.return_url, new.expires_in_h, new.max_sessions)
    response.headers["Location"] = f"/v1/studies/{study.id}/links"
    return link_info(LinkView(link, 0), signer)


@router.get("/studies/{study_id}/links", response_model=LinkList, responses=NOT_FOUND)
async def list_links(study_id: str, jobs: JobsDep, owner: OwnerDep, signer: SignerDep) -> LinkList:
    """The study's links, revoked and expired ones too, with what respondents did with each."""
    study = await owned_study(studies_of(jobs), owner, study_id)
    views = await asyncio.to_thread(LinkStore(jobs.store.engine).of_study, study.id)
    return LinkList(links=[link_info(view, signer) for view in views])


@router.delete("/studies/{study_id}/links/{link_id}", status_code=204, responses=NOT_FOUND)
async def revoke_link(study_id: str, link_id: str, jobs: JobsDep, owner: OwnerDep) -> Response:
    """Withdraw a link: its page and uploads answer 403 from now on. Sessions made through it stay."""
    study = await owned_study(studies_of(jobs), owner, study_id)
    if not await asyncio.to_thread(LinkStore(jobs.store.engine).revoke, study.id, link_id):
        raise ApiError(404, "not_found", "no such link in this study")
    return Response(status_code=204)
