"""A viewer's session analysed as a job of kind "session": the recording through the same clip analysis
as /v1/video, reduced to the viewer's per-second trace, which is all the study keeps (the job deletes
the recording when it ends, as every job does)."""

from __future__ import annotations

import asyncio
import json

from service.answers import VideoAnswer, opened_clip
from service.inference.results import model_refs
from service.jobs.schema import Job
from service.jobs.worker import JobRefused, Jobs, KindAnswer
from service.runtime import Runtime
from service.studies.schema import ANALYSED, EXCLUDED
from service.studies.store import StudyStore
from service.studies.trace import AttentionLimits, exclusion, stimulus_seconds, viewer_trace

SESSION = "session"


async def analyse_session(runtime: Runtime, jobs: Jobs, job: Job, data: bytes) -> str:
    """Record the viewer's trace (or why they are excluded); the job's result says which."""
    options, settings = job.options, runtime.settings
    emotion = runtime.emotion(options["model"])
    if emotion.stored.version != options["model_version"]:
        pinned = f"{options['model']}/{options['model_version']}"
        raise JobRefused("model_changed", f"this study's sessions are analysed with {pinned}, no longer served")
    clip = await opened_clip(runtime, data, settings.study_session_fps)
    answer = VideoAnswer(runtime, emotion, clip, (settings.study_session_fps, 0.0), None, job.id, True)
    response = await answer.response()
    duration, offset = options["stimulus_duration_s"], options["offset_s"]
    limits = AttentionLimits(settings.study_max_yaw_deg, settings.study_max_pitch_deg)
    trace = viewer_trace(response, offset, stimulus_seconds(duration), emotion.classifier.classes, limits)
    reason = exclusion(trace, response.video.duration_ms / 1000, offset, duration, settings.study_min_presence)
    status = EXCLUDED if reason else ANALYSED
    models = {role: ref.model_dump() for role, ref in model_refs(runtime.models(emotion)).items()}
    stored = {**trace.to_json(), "models": models}
    await asyncio.to_thread(StudyStore(jobs.store.engine).record, job, status, reason, stored)
    return json.dumps(
        {"study_id": options["study_id"], "session_id": options["session_id"], "status": status, "reason": reason}
    )


JOB_KINDS: dict[str, KindAnswer] = {SESSION: analyse_session}
