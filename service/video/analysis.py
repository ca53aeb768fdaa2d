"""A clip through the frame step: sampled frames decoded, detected and aligned in a reader thread,
classified through the caller's classify (the shared micro-batcher in the service), linked into
tracks, and summarised per person.

The reader thread stays at most a few frames ahead of classification, so decoding and detection of
the next frame overlap the model call for this one while memory stays bounded. Per-person
summaries are accumulated as frames go by; the per-frame timeline is kept only when the caller
asks for it (the streamed form sends each frame as it is done instead).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing, suppress
from typing import TypeVar

import numpy as np

from service.config import Settings, TrackingSettings
from service.inference.pipeline import AsyncClassify, Pipeline
from service.ops.metrics import Metrics
from service.tracking.step import FrameStep, detection_schedule
from service.tracking.summary import AnalysedFrame, ClipSummary
from service.tracking.tracker import FaceTracker
from service.video.decode import Clip, VideoLimits

T = TypeVar("T")
# Frames the reader may prepare ahead of classification.
READ_AHEAD = 2
_END = object()


def video_limits(settings: Settings) -> VideoLimits:
    s = settings
    return VideoLimits(s.video_max_bytes, s.video_max_duration_s, s.video_max_frame_pixels, s.video_max_frames)


def open_clip(data: bytes, fps: float, settings: Settings) -> Clip:
    """Open a clip and check it against the limits before any frame is decoded. Blocking: FFmpeg probes it."""
    clip = Clip(data, video_limits(settings))
    clip.check_sampling(fps)
    return clip


async def before(deadline: float | None, awaitable: Awaitable[T]) -> T:
    """Await within the deadline (monotonic seconds; None: no limit), else TimeoutError."""
    return await asyncio.wait_for(awaitable, None if deadline is None else max(0.0, deadline - time.monotonic()))


async def analyse_clip(
    clip: Clip,
    fps: float,
    step: FrameStep,
    classify: AsyncClassify,
    metrics: Metrics,
    deadline: float | None = None,
) -> AsyncGenerator[AnalysedFrame, None]:
    """Yield each analysed frame with its tracked faces, raising TimeoutError once `deadline` (monotonic
    seconds, if any) has passed, even while no frame comes. Closing the generator stops the reader thread
    before its next frame, skipped frames included."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue = asyncio.Queue()
    room = threading.Semaphore(READ_AHEAD)
    stop = threading.Event()

    def hand_over(item: object) -> None:
        # A consumer that has stopped may have closed its event loop too: then nobody is waiting.
        with suppress(RuntimeError):
            if not stop.is_set():
                loop.call_soon_threadsafe(ready.put_nowait, item)

    def read() -> None:
        try:
            for frame in clip.frames(fps, stop):
                metrics.stage_seconds.labels("video_decode").observe(frame.decode_seconds)
                item = (frame.time_ms, step.prepare(frame.time_ms / 1000, frame.image))
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                hand_over(item)
        except Exception as error:  # handed to the consumer, which raises it in the request
            hand_over(error)
        finally:
            clip.close()
            hand_over(_END)

    async def classify_in_time(crops: np.ndarray) -> np.ndarray:
        return await before(deadline, classify(crops))

    reader = threading.Thread(target=read, name="video-reader", daemon=True)
    reader.start()
    try:
        while (item := await before(deadline, ready.get())) is not _END:
            if isinstance(item, Exception):
                raise item
            room.release()
            time_ms, prepared = item
            faces = await step.track(prepared, classify_in_time)
            metrics.video_frames.inc()
            yield AnalysedFrame(time_ms, faces)
    finally:
        stop.set()


class ClipAnalysis:
    """One clip analysed into frames of tracked faces and a running summary: the API's JSON and NDJSON
    forms and the command line all run this."""

    def __init__(
        self,
        clip: Clip,
        fps: float,
        pipeline: Pipeline,
        classify: AsyncClassify,
        metrics: Metrics,
        tracking: TrackingSettings,
        smoothing_s: float,
        keep_timeline: bool,
        deadline: float | None = None,
        describe: bool = False,
    ) -> None:
        """`describe`: each face of each frame also gets its descriptors (the face mesh)."""
        self.clip, self.fps = clip, min(fps, clip.info.fps)
        self.classify, self.metrics, self.deadline = classify, metrics, deadline
        tracker = FaceTracker(smoothing_s, tracking.max_gap_s)
        self.step = FrameStep(pipeline, tracker, detection_schedule(tracking), describe)
        self.classes = self.step.classes
        self.summary = ClipSummary(self.classes, tracking.min_frames, keep_timeline)

    async def frames(self) -> AsyncIterator[AnalysedFrame]:
        """Each analysed frame, added to the summary as it goes."""
        frames = analyse_clip(self.clip, self.fps, self.step, self.classify, self.metrics, self.deadline)
        async with aclosing(frames):
            async for frame in frames:
                self.summary.add(frame)
                yield frame

    async def run(self) -> ClipSummary:
        """The whole clip, for callers that want only the summary."""
        async with aclosing(self.frames()) as frames:
            async for _ in frames:
                pass
        return self.summary
