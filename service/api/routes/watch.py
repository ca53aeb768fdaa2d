"""A participant link: the page a panel's respondent opens, and the few calls it makes.

The token in the path is the link's capability and its only key: it reaches the page, the study's ad,
the camera check, the graphs an on-device page runs, and one session per viewer of that study (a
recording, or on-device traces), and nothing else (no report, no session list, no other study).
Every call is rate-limited per link. The page is served with a strict Content-Security-Policy, no
referrer (the token never leaks to the return URL), and the cross-origin isolation headers WebAssembly
threads need.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from service.api.deps import JobsDep, ReadyRuntimeDep, SingleFile, StimuliDep
from service.api.errors import ApiError
from service.api.routes.demo import STATIC_DIR
from service.api.routes.links import RangeHeader, stimulus_response
from service.api.routes.on_device import BrowserGraph, describe, graph_response
from service.api.routes.studies import ATTRIBUTES, parsed_attributes
from service.inference.imaging import decode_image
from service.inference.model_store import StoredModel
from service.ops.rates import RateLimiter
from service.options import SessionOrigin
from service.runtime import Runtime
from service.studies.links import LinkFull, LinkRefused, LinkStore, LinkView
from service.studies.models import DeviceTraceAccepted, DeviceTraceIn
from service.studies.on_device import device_model, save_device_trace
from service.studies.schema import RECEIVING, Study
from service.studies.sessions import SessionUpload, submit_session
from service.studies.store import StudyStore

router = APIRouter(include_in_schema=False)
PAGE = STATIC_DIR / "watch.html"
FACE_CHECK_BYTES = 512 * 1024
FACE_CHECK_PIXELS = 1280 * 720
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=()",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Participation:
    """What a valid token reaches: its link and that link's study."""

    link: LinkView
    study: Study
    store: LinkStore


async def participation(token: str, request: Request, jobs: JobsDep) -> Participation:
    """The link a token names, if it still works (403 otherwise), within the link's request rate."""
    link_id, study_id = request.app.state.link_signer.verify(token)
    rates: RateLimiter = request.app.state.link_rates
    rates.take(link_id)
    store = LinkStore(jobs.store.engine)
    view, study = await asyncio.to_thread(store.usable, link_id, study_id)
    return Participation(view, study, store)


ParticipationDep = Annotated[Participation, Depends(participation)]


def page(status: int, config: dict) -> HTMLResponse:
    """The participant page with its settings, in a JSON data block whose `<`, `>` and `&` are escaped, so no
    value can close the block or start markup."""
    settings = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = PAGE.read_text().replace("{{settings}}", settings)
    return HTMLResponse(body, status, headers=SECURITY_HEADERS)


@router.get("/watch/{token}")
async def watch_page(token: str, request: Request, jobs: JobsDep) -> HTMLResponse:
    """The page: consent, camera check, the ad, the upload, then back to the panel."""
    try:
        joined = await participation(token, request, jobs)
    except LinkRefused as refused:
        return page(403, {"problem": str(refused)})
    query = request.query_params
    viewer = query.get("viewer", "").strip()
    answers = {key[2:]: value for key, value in query.items() if key.startswith("a.")}
    try:
        ATTRIBUTES.validate_python(answers)
    except ValidationError:
        return page(400, {"problem": "this link's answers (a.KEY=VALUE) are malformed: at most 16, 64 characters each"})
    if not viewer or len(viewer) > 256:
        return page(400, {"problem": "this link needs the respondent's id: ?viewer=ID"})
    link, study = joined.link, joined.study
    await asyncio.to_thread(joined.store.count, link.link.id, "opened")
    seen = await asyncio.to_thread(StudyStore(jobs.store.engine).viewer_seen, study.id, viewer)
    config = {
        "token": token,
        "mode": link.link.mode,
        "viewer": viewer,
        "attributes": answers,
        "returnUrl": link.link.return_url,
        "durationS": study.stimulus_duration_s,
        "cameraCheckS": request.app.state.settings.links.camera_check_s,
        "already": seen,
        "full": link.full,
        **(device_config(token, request.app.state.runtime, study) if link.link.mode != "upload" else {}),
    }
    return page(200, config)


def device_config(token: str, runtime: Runtime, study: Study) -> dict:
    """What an on-device page needs: where its two graphs are described, and the frame rate it must keep."""
    models = f"/watch/{token}/models"
    emotion = device_model(runtime, study, runtime.settings.links.device_model)
    graphs = {"detector": f"{models}/detector/browser", "emotion": f"{models}/{emotion}/browser"}
    return {"device": graphs, "minFps": runtime.settings.links.min_device_fps}


@router.get("/watch/{token}/stimulus")
async def watch_stimulus(joined: ParticipationDep, stimuli: StimuliDep, range: RangeHeader = None) -> Response:
    response = stimulus_response(joined.study, stimuli, range)
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@router.post("/watch/{token}/face")
async def face_check(joined: ParticipationDep, runtime: ReadyRuntimeDep, request: Request) -> dict:
    """The camera check: whether a face is in this still (a small JPEG), which is not kept."""
    data = await request.body()
    if len(data) > FACE_CHECK_BYTES:
        raise ApiError(413, "request_too_large", f"a camera-check still is at most {FACE_CHECK_BYTES} bytes")

    def faces() -> int:
        return len(runtime.pipeline.detector.detect(decode_image(data, FACE_CHECK_BYTES, FACE_CHECK_PIXELS)))

    return {"faces": await asyncio.to_thread(faces)}


class Outcome(BaseModel):
    status: Literal["declined", "screened_out", "error"]


@router.post("/watch/{token}/outcome", status_code=204)
async def outcome(joined: ParticipationDep, ended: Outcome) -> Response:
    """A respondent who ended without a session: counted on the link, nothing else kept."""
    column = {"declined": "declined", "screened_out": "screened_out", "error": "errors"}[ended.status]
    await asyncio.to_thread(joined.store.count, joined.link.link.id, column)
    return Response(status_code=204)


@router.post("/watch/{token}/sessions", status_code=202, dependencies=[SingleFile])
async def watch_session(
    joined: ParticipationDep,
    runtime: ReadyRuntimeDep,
    jobs: JobsDep,
    file: Annotated[UploadFile, File()],
    viewer: Annotated[str, Form(min_length=1, max_length=256)],
    offset_s: Annotated[float, Form(ge=0, le=3600, description="Where the ad starts in the recording.")],
    lead_in_s: Annotated[float, Form(ge=0, le=3600, description="How long the camera ran before the recording.")],
    visible_share: Annotated[float, Form(ge=0, le=1, description="Share of the ad played with the tab visible.")],
    attributes: Annotated[str | None, Form(max_length=4096)] = None,
) -> dict:
    """The viewer's webcam recording, made while the ad played, as one session of the link's study."""
    link = joined.link
    if link.full:
        raise LinkFull("this test has all the sessions it needs")
    if link.link.mode == "on-device":
        raise ApiError(409, "wrong_mode", "this link analyses on the device: it takes traces, not recordings")
    origin = SessionOrigin(
        source="link", mode="upload", link_id=link.link.id, lead_in_s=lead_in_s, visible_share=visible_share
    )
    upload = SessionUpload(
        joined.study.owner,
        await file.read(),
        viewer,
        offset_s,
        None,
        None,
        parsed_attributes(attributes),
        origin,
    )
    _, _, view = await submit_session(runtime, jobs, joined.study, upload)
    if view is None:
        raise LinkRefused("this study was deleted")
    return {"session_id": view.id, "status": view.status}


def device_graph(runtime: Runtime, joined: Participation, name: str) -> StoredModel:
    """The two graphs an on-device page runs: the detector, and the study's emotion model."""
    if joined.link.link.mode == "upload":
        raise ApiError(404, "not_found", "this link analyses recordings on the service")
    if name == "detector":
        return runtime.detector_model
    if name != device_model(runtime, joined.study, runtime.settings.links.device_model):
        raise ApiError(404, "not_found", "this link's page runs the detector and the study's emotion model only")
    return runtime.emotion(name).stored


@router.get("/watch/{token}/models/{name}/browser")
async def watch_graph(token: str, name: str, joined: ParticipationDep, runtime: ReadyRuntimeDep) -> BrowserGraph:
    """A graph the on-device page runs, described with its sha256, which the page checks."""
    stored = device_graph(runtime, joined, name)
    url = f"/watch/{token}/models/{name}/{stored.version}/graph.onnx"
    return await asyncio.to_thread(describe, runtime, stored, url)


@router.get("/watch/{token}/models/{name}/{version}/graph.onnx")
async def watch_graph_file(name: str, version: str, joined: ParticipationDep, runtime: ReadyRuntimeDep) -> Response:
    isolated = {"Cross-Origin-Resource-Policy": "same-origin"}
    return await graph_response(device_graph(runtime, joined, name), version, isolated)


@router.post("/watch/{token}/traces", status_code=202)
async def watch_traces(
    joined: ParticipationDep, runtime: ReadyRuntimeDep, jobs: JobsDep, sent: DeviceTraceIn
) -> DeviceTraceAccepted:
    """Per-second traces from a page analysing on the device: progress while the ad plays, then the final
    post, which the quality gate judges. No image is ever sent."""
    link = joined.link
    if link.link.mode == "upload":
        raise ApiError(409, "wrong_mode", "this link takes recordings, analysed by the service")
    store = StudyStore(jobs.store.engine)
    if link.full and not await asyncio.to_thread(store.viewer_seen, joined.study.id, sent.viewer):
        raise LinkFull("this test has all the sessions it needs")
    view = await save_device_trace(runtime, store, joined.study, link.link.id, sent)
    if view.status != RECEIVING:  # the final post: one session, counted once (a second is refused)
        jobs.usage.add(joined.study.owner, study_sessions=1)
    return DeviceTraceAccepted(session_id=view.id, status=view.status)
