"""The answers of the synchronous endpoints, built once for the routes and for the job worker, so a
job's result is exactly what POST /v1/predict or /v1/video would have returned for the same input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from service.config import TrackingSettings
from service.inference.errors import ImageRejected
from service.inference.pipeline import ImageFaces
from service.options import ClipOptions
from service.results import image_result, model_refs, safe_filename, track_results, tracked_faces, video_summary
from service.runtime import Runtime, ServedModel
from service.schemas import PredictResponse, TrackedFace, VideoInfo, VideoResponse
from service.tracking.summary import AnalysedFrame, ClipSummary
from service.video.analysis import ClipAnalysis, open_clip
from service.video.decode import Clip

# Counts one piece of work for the key it is bound to, e.g. record(images=1, faces=3) (service.jobs.usage).
UseRecorder = Callable[..., None]


async def analyse_photos(
    runtime: Runtime, emotion: ServedModel, uploads: list[bytes], record: UseRecorder, describe: bool = False
) -> list[ImageFaces]:
    """A request's photos within the photo timeout (TimeoutError past it), counted as the key's use. The
    caller holds the admission slot: the route for a request, the worker for a job."""
    with emotion.batcher.reserve() as classify:
        analysed = await asyncio.wait_for(
            runtime.pipeline.analyse_many(uploads, classify, describe), runtime.settings.request_timeout_s
        )
    record(images=len(analysed), faces=sum(len(image.faces) for image in analysed))
    return analysed


def photo_answer(
    runtime: Runtime,
    emotion: ServedModel,
    names: list[str | None],
    analysed: list[ImageFaces],
    request_id: str,
    described: bool = False,
) -> PredictResponse:
    classes = emotion.classifier.classes
    return PredictResponse(
        request_id=request_id,
        models=model_refs(runtime.models(emotion, described)),
        images=[image_result(name, a, classes) for name, a in zip(names, analysed)],
    )


async def opened_clip(runtime: Runtime, data: bytes, fps: float) -> Clip:
    """Open and check a clip off the event loop, counting a refusal."""
    try:
        return await asyncio.to_thread(open_clip, data, fps, runtime.settings)
    except ImageRejected as rejection:
        runtime.metrics.rejected.labels(rejection.reason).inc()
        raise


class VideoAnswer:
    """One clip, analysed within the video timeout into the /v1/video answer, whole or frame by frame."""

    def __init__(
        self,
        runtime: Runtime,
        emotion: ServedModel,
        clip: Clip,
        options: ClipOptions,
        filename: str | None,
        request_id: str,
        keep_timeline: bool,
        record: UseRecorder,
        tracking: TrackingSettings | None = None,
    ) -> None:
        """`record` counts the clip's use for its key; `tracking`: the service's own unless given (study
        sessions detect over every full frame)."""
        fps, smoothing = options.fps, options.smoothing
        self.runtime, self.emotion, self.clip, self.record = runtime, emotion, clip, record
        self.filename, self.request_id = safe_filename(filename), request_id
        deadline = time.monotonic() + runtime.settings.video_timeout_s
        self.described = options.descriptors
        self.analysis = ClipAnalysis(
            clip,
            fps,
            runtime.pipeline,
            emotion.batcher.classify,
            runtime.metrics,
            tracking or runtime.settings.tracking,
            smoothing,
            keep_timeline=keep_timeline,
            deadline=deadline,
            describe=options.descriptors,
        )

    def frames(self) -> AsyncIterator[AnalysedFrame]:
        return self.analysis.frames()

    def public_faces(self, frame: AnalysedFrame) -> list[TrackedFace]:
        """A frame's faces as the streamed answer's line gives them."""
        return tracked_faces(frame.faces, self.analysis.classes)

    def finished(self) -> ClipSummary:
        """The summary once every frame is analysed, counted; a clip of which no frame decodes is refused."""
        summary = self.analysis.summary
        if summary.frames_analysed == 0:
            self.runtime.metrics.rejected.labels("undecodable").inc()
            raise ImageRejected(400, "undecodable", "no frame of the clip could be decoded")
        self.runtime.metrics.video_clips.inc()
        self.runtime.metrics.tracks_per_clip.observe(len(summary.kept()))
        self.record(media_seconds=self.clip.length_ms / 1000, faces=len(summary.kept()))
        return summary

    def result(self) -> VideoResponse:
        """The /v1/video answer once every frame is analysed."""
        summary = self.finished()
        info = self.clip.info
        return VideoResponse(
            request_id=self.request_id,
            models=model_refs(self.runtime.models(self.emotion, self.described)),
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
            tracks=track_results(summary),
            summary=video_summary(summary),
        )

    async def response(self) -> VideoResponse:
        await self.analysis.run()
        return self.result()
