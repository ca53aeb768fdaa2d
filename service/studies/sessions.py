"""A viewer's session: submitted as a job of kind "session", and analysed through the same clip analysis
as /v1/video, reduced to the viewer's per-second trace, which is all the study keeps (the job deletes
the recording when it ends, as every job does)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field

from service.answers import VideoAnswer, opened_clip
from service.inference.errors import ImageRejected
from service.jobs.queue import JobRefused, Jobs, KindAnswer
from service.jobs.schema import SESSION, Job
from service.jobs.store import NewJob
from service.jobs.submission import checked_kind, queue, request_digest
from service.options import ClipOptions, SessionJob, SessionOrigin
from service.results import model_refs
from service.runtime import Runtime
from service.studies.schema import ANALYSED, EXCLUDED, Study
from service.studies.store import ModelPinned, SessionView, StudyStore
from service.studies.trace import AttentionLimits, exclusion, stimulus_seconds, trace_of, viewer_trace
from service.video.decode import ACCEPTED as CLIP_FORMATS


class StudyModelPinned(Exception):
    """A session asked for another model than the one its study's sessions are analysed with."""


class DuplicateViewer(Exception):
    """The study has a session of this viewer already: viewers, not uploads, are the unit."""


@dataclass(frozen=True)
class SessionUpload:
    owner: str
    data: bytes
    viewer: str | None
    offset_s: float
    model: str | None
    idempotency_key: str | None
    attributes: dict[str, str]
    origin: SessionOrigin = field(default_factory=SessionOrigin)


async def submit_session(
    runtime: Runtime, jobs: Jobs, study: Study, upload: SessionUpload
) -> tuple[Job, bool, SessionView | None]:
    """Queue one viewer's recording: (its job, whether it is new, the session as it stands, which for a
    replayed idempotency key may be analysed already)."""
    emotion = runtime.emotion(study.model_name or upload.model)
    if study.model_name and upload.model and upload.model != study.model_name:
        raise StudyModelPinned(f"this study's sessions are analysed with {study.model_name}")
    if await checked_kind(runtime, upload.data, runtime.settings.studies.session_fps) != "video":
        runtime.metrics.rejected.labels("unsupported_type").inc()
        raise ImageRejected(415, "unsupported_type", f"a session is a recording ({CLIP_FORMATS}), not a photo")
    store = StudyStore(jobs.store.engine)
    replay = await asyncio.to_thread(jobs.store.by_key, upload.owner, upload.idempotency_key)
    if (
        upload.viewer is not None
        and replay is None
        and await asyncio.to_thread(store.viewer_seen, study.id, upload.viewer)
    ):
        raise DuplicateViewer(f"viewer {upload.viewer!r} has a session in this study already; delete it to replace it")
    pinned = (emotion.name, emotion.stored.version)
    try:
        await asyncio.to_thread(store.pin_model, study.id, pinned)
    except ModelPinned as other:
        raise ModelPinned(other.pinned, f"the service now serves {pinned[0]}/{pinned[1]}") from None
    options = SessionJob(
        study_id=study.id,
        session_id=uuid.uuid4().hex,
        viewer=upload.viewer,
        offset_s=upload.offset_s,
        stimulus_duration_s=study.stimulus_duration_s,
        model=pinned[0],
        model_version=pinned[1],
        attributes=upload.attributes,
        origin=upload.origin,
    )
    # The digest leaves out the fresh session id: a retry with the same key is the same request.
    new = NewJob(
        owner=upload.owner,
        kind=SESSION,
        options=options.model_dump(mode="json"),
        request_digest=request_digest(upload.data, SESSION, options.model_copy(update={"session_id": ""})),
        idempotency_key=upload.idempotency_key,
    )
    job, created = await queue(jobs, new, upload.data)
    await asyncio.to_thread(store.add_session, job)
    view = await asyncio.to_thread(store.view, SessionJob.model_validate(job.options).session_id)
    return job, created, view


def session_kinds(runtime: Runtime, jobs: Jobs) -> dict[str, KindAnswer]:
    """The session kind: record the viewer's trace (or why they are excluded); the job's result says which."""

    async def analyse_session(job: Job, data: bytes) -> str:
        options, settings = SessionJob.model_validate(job.options), runtime.settings.studies
        emotion = runtime.emotion(options.model)
        if emotion.stored.version != options.model_version:
            pinned = f"{options.model}/{options.model_version}"
            raise JobRefused("model_changed", f"this study's sessions are analysed with {pinned}, no longer served")
        clip_options = ClipOptions(fps=settings.session_fps, smoothing=0.0, descriptors=settings.descriptors)
        clip = await opened_clip(runtime, data, clip_options.fps)
        # Full-frame detection on every frame: region detection misses some faces on alternate frames (a
        # weak face at the region's 80 px), and presence must not depend on that.
        every_frame = dataclasses.replace(runtime.settings.tracking, detection="full")
        record = jobs.usage.recorder(job.owner)
        answer = VideoAnswer(runtime, emotion, clip, clip_options, None, job.id, True, record, every_frame)
        analysed_ms = []  # every analysed frame, with a face or not: what presence is measured against
        async with aclosing(answer.frames()) as frames:
            async for frame in frames:
                analysed_ms.append(frame.time_ms)
        tracks = list(answer.finished().kept().values())
        duration, offset = options.stimulus_duration_s, options.offset_s
        frame_size = (clip.info.width, clip.info.height)
        seconds = viewer_trace(tracks, frame_size, offset, stimulus_seconds(duration), analysed_ms)
        trace = trace_of(seconds, AttentionLimits.of(settings))
        reason = exclusion(trace, clip.length_ms / 1000, offset, duration, settings.min_presence)
        status = EXCLUDED if reason else ANALYSED
        refs = model_refs(runtime.models(emotion, settings.descriptors))
        models = {role: ref.model_dump() for role, ref in refs.items()}
        stored = {**trace.to_json(), "models": models}
        await asyncio.to_thread(StudyStore(jobs.store.engine).record, job, status, reason, stored)
        outcome = {"study_id": options.study_id, "session_id": options.session_id, "status": status, "reason": reason}
        return json.dumps(outcome)

    return {SESSION: analyse_session}
