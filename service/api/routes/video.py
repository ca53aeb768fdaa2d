"""POST /v1/video: every person in a clip, tracked, with an emotion timeline and summaries.

JSON by default; with `Accept: application/x-ndjson` one line per analysed frame as it is done,
then a closing line with the tracks' and the clip's summaries. Both forms hold one admission slot
from before their first byte to their last, stop at the video timeout, and stop working as soon
as their client is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing, suppress
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.deps import EmotionModelDep, ReadyRuntimeDep
from service.api.errors import DOMAIN_ERRORS, ApiError, as_api_error, error_body, timed_out
from service.api.routes.uploads import ERRORS
from service.inference.errors import ImageRejected
from service.inference.results import model_refs, safe_filename
from service.runtime import Runtime, ServedModel
from service.schemas import ErrorResponse, VideoInfo, VideoResponse
from service.video.analysis import ClipAnalysis, open_clip
from service.video.decode import ACCEPTED, Clip

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


@router.post("/video", response_model=VideoResponse, responses=VIDEO_ERRORS)
async def video(
    request: Request,
    runtime: ReadyRuntimeDep,
    emotion: EmotionModelDep,
    file: Annotated[UploadFile, File(description=f"One clip: {ACCEPTED}.")],
    fps: Annotated[float, Query(ge=0.2, le=120, description="Frames analysed per second of video.")] = 5.0,
    smoothing: Annotated[
        float, Query(ge=0, le=60, description="Seconds of temporal smoothing per person; 0 turns it off.")
    ] = 1.0,
) -> VideoResponse | StreamingResponse:
    """Track every face through a clip and return each person's emotions over time."""
    release = runtime.admission.acquire()  # over capacity: a 503 before any byte, in both forms
    try:
        clip = await opened_clip(runtime, await file.read(), fps)
        streamed = NDJSON in request.headers.get("accept", "")
        analysis = VideoRequest(
            runtime, emotion, clip, (fps, smoothing), file.filename, request.state.request_id, streamed
        )
        if streamed:
            response = SlotHoldingStreamingResponse(analysis.lines(), release, media_type=NDJSON)
            release = None  # the response holds the slot now
            return response
        try:
            return await unless_disconnected(request, analysis.response)
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


async def opened_clip(runtime: Runtime, data: bytes, fps: float) -> Clip:
    """Open and check the clip off the event loop, counting a refusal."""
    try:
        return await asyncio.to_thread(open_clip, data, fps, runtime.settings)
    except ImageRejected as rejection:
        runtime.metrics.rejected.labels(rejection.reason).inc()
        raise


class VideoRequest:
    """One request's clip, analysed either into one response or into NDJSON lines."""

    def __init__(
        self,
        runtime: Runtime,
        emotion: ServedModel,
        clip: Clip,
        options: tuple[float, float],
        filename: str | None,
        request_id: str,
        streamed: bool,
    ) -> None:
        fps, smoothing = options
        self.runtime, self.emotion, self.clip = runtime, emotion, clip
        self.filename, self.request_id = safe_filename(filename), request_id
        deadline = time.monotonic() + runtime.settings.video_timeout_s
        self.analysis = ClipAnalysis(
            clip,
            fps,
            runtime.pipeline,
            emotion.batcher.classify,
            runtime.metrics,
            runtime.settings,
            smoothing,
            keep_timeline=not streamed,
            deadline=deadline,
        )

    def _result(self) -> VideoResponse:
        summary = self.analysis.summary
        if summary.frames_analysed == 0:
            self.runtime.metrics.rejected.labels("undecodable").inc()
            raise ImageRejected(400, "undecodable", "no frame of the clip could be decoded")
        tracks = summary.track_results()
        self.runtime.metrics.video_clips.inc()
        self.runtime.metrics.tracks_per_clip.observe(len(tracks))
        info = self.clip.info
        return VideoResponse(
            request_id=self.request_id,
            models=model_refs(self.runtime.models(self.emotion)),
            video=VideoInfo(
                filename=self.filename,
                width=info.width,
                height=info.height,
                fps=info.fps,
                duration_ms=info.duration_ms,
                frames_analysed=summary.frames_analysed,
                partial=self.clip.partial_reason is not None,
                partial_reason=self.clip.partial_reason,
            ),
            tracks=tracks,
            summary=summary.summary(),
        )

    async def response(self) -> VideoResponse:
        await self.analysis.run()
        return self._result()

    async def lines(self) -> AsyncIterator[bytes]:
        """A line per frame, then the summaries. Errors once streaming has begun end it with an error line."""
        try:
            try:
                async with aclosing(self.analysis.frames()) as frames:
                    async for frame, faces in frames:
                        line = {"time_ms": frame.time_ms, "faces": [f.model_dump() for f in faces]}
                        yield (json.dumps(line) + "\n").encode()
            except TimeoutError:
                raise timed_out(self.runtime.settings.video_timeout_s) from None
            yield (self._result().model_dump_json(exclude=WITHOUT_TIMELINES) + "\n").encode()
        except (ApiError, *DOMAIN_ERRORS) as failure:
            error = as_api_error(failure)
            yield (json.dumps(error_body(error.code, error.message, self.request_id)) + "\n").encode()
