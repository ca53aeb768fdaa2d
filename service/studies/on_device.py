"""Sessions analysed in the viewer's browser.

The participant page runs the service's own detector and emotion graphs (the study's pinned versions)
and sends, for each second of the ad, what the analysis of a recording reduces that second to (a
`SecondSummary`): never an image. The service checks the numbers and then applies the rules it applies
to a recording: a second counts when the face is in half its frames, the same attention limits and
quality gate, and a minimum analysed frame rate. Progress arrives every few seconds as the viewer
watches, each post with the seconds since the last (the session is `receiving`); the final post sends
the whole trace again (the main face is chosen over the whole session), records the outcome and sends
the study's events.
"""

from __future__ import annotations

import asyncio
import uuid

from service.jobs.database import utcnow
from service.results import model_refs
from service.runtime import Runtime
from service.studies.models import DeviceTraceIn
from service.studies.schema import ANALYSED, EXCLUDED, RECEIVING, Study, StudySession
from service.studies.sessions import DuplicateViewer
from service.studies.store import ModelPinned, SessionView, StudyStore
from service.studies.trace import AttentionLimits, SecondSummary, exclusion, stimulus_seconds, trace_of


class TraceRefused(Exception):
    """Traces that do not fit the study: the wrong model, classes or number of seconds (422)."""


def device_model(runtime: Runtime, study: Study, fallback: str) -> str:
    """The emotion model a study's on-device sessions run: its pinned one, else `fallback` (settings)."""
    return runtime.emotion(study.model_name or fallback).name


def checked_seconds(runtime: Runtime, study: Study, sent: DeviceTraceIn) -> list[SecondSummary]:
    """The per-second summaries, once they fit the study: its pinned model (for a study not yet pinned, the
    model on-device links run, at the version served now), that model's classes, and no more seconds
    than the ad has (exactly as many in the final post)."""
    pinned = (study.model_name, study.model_version) if study.model_name else None
    served = runtime.emotion(device_model(runtime, study, runtime.settings.links.device_model)).stored
    expected = pinned or (served.name, served.version)
    if (sent.model.name, sent.model.version) != expected:
        raise TraceRefused(f"this study's sessions are analysed with {expected[0]}/{expected[1]}")
    classes = len(runtime.emotion(sent.model.name).classifier.classes)
    seconds, reaching = stimulus_seconds(study.stimulus_duration_s), sent.first_second + len(sent.seconds)
    if reaching > seconds or (sent.final and (sent.first_second, len(sent.seconds)) != (0, seconds)):
        sent_span = f"seconds {sent.first_second} to {reaching - 1}"
        raise TraceRefused(f"the ad has {seconds} seconds; {sent_span} were sent (a final post sends them all)")
    for t, second in enumerate(sent.seconds):
        if second.probabilities is not None and len(second.probabilities) != classes:
            raise TraceRefused(f"seconds[{t}]: {classes} probabilities expected, one per class")
    return [SecondSummary(s.analysed, s.faces, s.probabilities, s.yaw_deg, s.pitch_deg) for s in sent.seconds]


async def save_device_trace(
    runtime: Runtime, store: StudyStore, study: Study, link_id: str, sent: DeviceTraceIn
) -> SessionView:
    """Record what the page sent: progress (the session stays `receiving`) or the final trace, judged by the
    quality gate. DuplicateViewer if the viewer has another session in the study."""
    summaries = checked_seconds(runtime, study, sent)
    emotion = runtime.emotion(sent.model.name)
    try:
        await asyncio.to_thread(store.pin_model, study.id, (sent.model.name, sent.model.version))
    except ModelPinned as other:
        raise TraceRefused(f"this study's sessions are analysed with {other.pinned[0]}/{other.pinned[1]}") from None
    settings = runtime.settings.studies
    trace = trace_of(summaries, AttentionLimits.of(settings))
    status, reason = RECEIVING, None
    if sent.final:
        reason = exclusion(trace, sent.recording_s, sent.offset_s, study.stimulus_duration_s, settings.min_presence)
        least = runtime.settings.links.min_device_fps  # under it, a trace is too thin to stand beside a recording's
        if reason is None and sent.analysed_fps < least:
            reason = f"analysed at {sent.analysed_fps:.1f} frames a second (minimum {least:g})"
        status = EXCLUDED if reason else ANALYSED
    models = {role: ref.model_dump() for role, ref in model_refs(runtime.models(emotion)).items()}
    row = StudySession(
        id=uuid.uuid4().hex,
        study_id=study.id,
        job_id=None,
        viewer=sent.viewer,
        offset_s=sent.offset_s,
        created_at=utcnow(),
        status=status,
        reason=reason,
        trace={**trace.to_json(), "models": models},
        attributes=sent.attributes or None,
        source="link",
        mode="on-device",
        link_id=link_id,
        visible_share=sent.visible_share,
        lead_in_s=sent.lead_in_s,
        analysed_fps=sent.analysed_fps,
    )
    saved = await asyncio.to_thread(store.save_device_session, row, sent.first_second)
    if saved is None:
        raise DuplicateViewer(f"viewer {sent.viewer!r} has a session in this study already")
    return await asyncio.to_thread(store.view, saved)
