"""POST /v1/video: every person in a clip, tracked, with an emotion timeline and summaries.

JSON by default; with `Accept: application/x-ndjson` one line per analysed frame as it is done,
then a closing line with the tracks' and the clip's summaries. Both forms hold one admission slot
from before their first byte to their last, stop at the video timeout, and stop working as soon
as their client is gone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing, suppress
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.answers import VideoAnswer, opened_clip
from service.api.deps import EmotionModelDep, JobsDep, OwnerDep, ReadyRuntimeDep, SingleFile
from service.api.errors import DOMAIN_ERRORS, ApiError, as_api_error, error_body, timed_out
from service.api.routes.uploads import ERRORS
from service.options import ClipOptions
from service.schemas import ErrorResponse, VideoResponse
from service.video.decode import ACCEPTED

router = APIRouter(tags=["video"])
NDJSON = "application/x-ndjson"
# The closing NDJSON line carries the track summaries; their frames were already sent line by line.
WITHOUT_TIMELINES = {"tracks": {"__all__": {"timeline"}}}
T = TypeVar("T")

VIDEO_ERRORS = {
    **ERRORS,
    200: {"content": {NDJSON: {}}, "description": "JSON, or NDJSON lines with `Accept: application/x-ndjson`."},
    413: {"model": ErrorResponse, "description": "The clip is too large, too long, or has too many pixels or frames."},
    415: {"model": ErrorResponse, "description": "Not a video (an image gets a pointer to /v1/predict)."},
}


@router.post("/video", response_model=VideoResponse, responses=VIDEO_ERRORS, dependencies=[SingleFile])
async def video(
    request: Request,
    runtime: ReadyRuntimeDep,
    emotion: EmotionModelDep,
    jobs: JobsDep,
    owner: OwnerDep,
    file: Annotated[UploadFile, File(description=f"One clip: {ACCEPTED}.")],
    options: Annotated[ClipOptions, Query()],
) -> VideoResponse | StreamingResponse:
    """Track every face through a clip and return each person's emotions over time."""
    await asyncio.to_thread(jobs.usage.check_media_quota, owner)
    release = runtime.admission.acquire()  # over capacity: a 503 before any byte, in both forms
    try:
        clip = await opened_clip(runtime, await file.read(), options.fps)
        streamed = NDJSON in request.headers.get("accept", "")
        record = jobs.usage.recorder(owner)
        request_id = request.state.request_id
        answer = VideoAnswer(runtime, emotion, clip, options, file.filename, request_id, not streamed, record)
        if streamed:
            lines = ndjson_lines(answer, runtime.settings.video_timeout_s)
            response = SlotHoldingStreamingResponse(lines, release, media_type=NDJSON)
            release = None  # the response holds the slot now
            return response
        try:
            return await unless_disconnected(request, answer.response)
        except TimeoutError:
            raise timed_out(runtime.settings.video_timeout_s) from None
    finally:
        if release is not None:
            release()


class SlotHoldingStreamingResponse(StreamingResponse):
    """A streamed response that releases its admission slot when it ends, however it ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], media_type: str) -> None:
        super().__init__(content, media_type=media_type)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


class ClientGone(ApiError):
    """The client closed the connection before its answer: nobody is left to answer (logged as 499)."""

    def __init__(self) -> None:
        super().__init__(499, "client_closed", "the client closed the connection")


async def unless_disconnected(request: Request, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the work, cancelling it if the client disconnects first, so a departed client costs nothing more."""
    task = asyncio.ensure_future(work())
    watcher = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task not in done:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task  # unwinds the analysis: its reader thread stops before its next frame
        raise ClientGone
    return task.result()


async def wait_for_disconnect(request: Request) -> None:
    """Once the body is read, the server's next message is the disconnect (or the end of the response)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def ndjson_lines(answer: VideoAnswer, timeout_s: float) -> AsyncIterator[bytes]:
    """A line per frame, then the summaries. Errors once streaming has begun end it with an error line."""
    try:
        try:
            async with aclosing(answer.frames()) as frames:
                async for frame in frames:
                    line = {"time_ms": frame.time_ms, "faces": [f.model_dump() for f in answer.public_faces(frame)]}
                    yield (json.dumps(line) + "\n").encode()
        except TimeoutError:
            raise timed_out(timeout_s) from None
        yield (answer.result().model_dump_json(exclude=WITHOUT_TIMELINES) + "\n").encode()
    except (ApiError, *DOMAIN_ERRORS) as failure:
        error = as_api_error(failure)
        yield (json.dumps(error_body(error.code, error.message, answer.request_id)) + "\n").encode()
