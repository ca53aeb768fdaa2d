"""The ad itself, kept with its study for the participant links: checked as a clip (the formats and
limits of /v1/video), its length held against the study's, and served in byte ranges for players."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from service.inference.errors import ImageRejected
from service.inference.imaging import sniff_container
from service.jobs.media import MediaStore
from service.jobs.submission import checked_clip
from service.runtime import Runtime
from service.studies.schema import Study
from service.studies.store import StudyStore
from service.video.decode import ACCEPTED as CLIP_FORMATS

STIMULI = "stimuli"  # the stimulus store, below the uploads' (whose orphan sweep never sees it)
DURATION_TOLERANCE_S = 0.5
CONTENT_TYPES = {"MP4/MOV": "video/mp4", "WebM/Matroska": "video/webm", "AVI": "video/x-msvideo", "GIF": "image/gif"}
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class StimulusMismatch(Exception):
    """The clip's length is not the study's stimulus length."""


class NoStimulus(Exception):
    """The study has no stimulus yet: a link would have nothing to play."""


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"the stimulus has {size} bytes")
        self.size = size


@dataclass(frozen=True)
class StimulusInfo:
    duration_s: float
    width: int
    height: int
    content_type: str


async def keep_stimulus(
    runtime: Runtime, stimuli: MediaStore, store: StudyStore, study: Study, data: bytes
) -> StimulusInfo:
    """Check the clip, then keep it as the study's stimulus (replacing any before it)."""
    container = sniff_container(data)
    if container is None:
        runtime.metrics.rejected.labels("unsupported_type").inc()
        raise ImageRejected(415, "unsupported_type", f"a stimulus is a clip ({CLIP_FORMATS})")
    info = await checked_clip(runtime, data, 1.0)
    duration_s = round(info.duration_ms / 1000, 3)
    if abs(duration_s - study.stimulus_duration_s) > DURATION_TOLERANCE_S:
        raise StimulusMismatch(
            f"the clip lasts {duration_s:g} s and the study's stimulus_duration_s is {study.stimulus_duration_s:g} s"
        )
    stimulus = StimulusInfo(duration_s, info.width, info.height, CONTENT_TYPES[container])
    location = await asyncio.to_thread(stimuli.save, study.id, data)
    fields = (stimulus.content_type, stimulus.width, stimulus.height, stimulus.duration_s)
    await asyncio.to_thread(store.set_stimulus, study.id, location, len(data), *fields)
    return stimulus


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `Range: bytes=` header; None to send it all; RangeNotSatisfiable
    when it asks for nothing the stimulus has. A header this does not understand is ignored, as HTTP allows."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last `last` bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(size)
    return start, end
