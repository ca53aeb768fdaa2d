"""Open an uploaded clip from memory and hand out the frames to analyse, within limits.

Nothing touches the disk: OpenCV's FFmpeg backend reads the bytes through a Python stream object,
one that never raises into OpenCV (see `ClipStream`). The container's metadata is checked against
the limits before any frame is decoded, and every decoded frame again (metadata can lie). Frames
that are not sampled are only grabbed (demuxed and decoded by FFmpeg, never converted to BGR), and
each sampled frame is dropped once the caller has it, so memory stays flat whatever the clip's
length.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from service.inference.errors import ImageRejected
from service.inference.imaging import check_size, sniff_container, sniff_format

ACCEPTED = "MP4, MOV, WebM, Matroska, AVI or animated GIF"


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int
    max_duration_s: float
    max_frame_pixels: int
    max_frames_analysed: int


@dataclass(frozen=True)
class ClipInfo:
    width: int
    height: int
    fps: float
    duration_ms: float


class ClipStream(io.BufferedIOBase):
    """The clip's bytes as the stream OpenCV reads, hardened against what a hostile container asks of it.

    OpenCV 5 hands seek offsets to Python as 32-bit integers: an offset of 2**31 or more from a
    forged index arrives negative, BytesIO raises, and OpenCV then frees a null pointer (the whole
    process dies). Here every seek lands inside the data and every failure reads as end of data.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._size = len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._data.read(-1 if size is None else size)
        except Exception:
            return b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._data.tell(), io.SEEK_END: self._size}.get(whence, 0)
            return self._data.seek(min(max(base + int(offset), 0), self._size))
        except Exception:
            return self._data.tell()

    def tell(self) -> int:
        return self._data.tell()


@dataclass(frozen=True)
class SampledFrame:
    time_ms: float
    image: np.ndarray  # upright BGR uint8
    decode_seconds: float  # grabbing since the previous sampled frame, plus converting this one


class Clip:
    """One opened clip. Not thread-safe: one reader at a time."""

    def __init__(self, data: bytes, limits: VideoLimits) -> None:
        check_size(data, limits.max_bytes, "the clip")
        container = sniff_container(data)
        if container is None:
            if sniff_format(data) is not None:
                raise ImageRejected(415, "image_not_video", "this is an image: use /v1/predict")
            raise ImageRejected(415, "unsupported_type", f"not a video; send {ACCEPTED}")
        self.limits = limits
        self.capture = cv2.VideoCapture(ClipStream(data), cv2.CAP_FFMPEG, [])
        self.partial_reason: str | None = None  # why the frames ended before the clip's declared end
        self.last_frame_ms = 0.0  # the time of the last frame read
        if not self.capture.isOpened():
            raise ImageRejected(400, "undecodable", f"the {container} data cannot be decoded")
        width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        frames = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        if width <= 0 or height <= 0 or not fps > 0:
            raise ImageRejected(400, "undecodable", f"the {container} data has no readable video stream")
        self._check_pixels(width, height)
        duration_ms = 1000 * frames / fps if frames > 0 else 0.0
        self._check_duration(duration_ms)
        self.info = ClipInfo(width, height, round(fps, 3), round(duration_ms, 1))

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_frame_pixels:
            raise ImageRejected(
                413, "too_many_pixels", f"{width}x{height} frames exceed the {self.limits.max_frame_pixels} pixel limit"
            )

    def _check_duration(self, duration_ms: float) -> None:
        if duration_ms > self.limits.max_duration_s * 1000:
            raise ImageRejected(413, "video_too_long", f"the clip is longer than {self.limits.max_duration_s:g} s")

    @property
    def length_ms(self) -> float:
        """How long the clip is: as declared, or, where the container declares nothing (a browser's
        MediaRecorder WebM), to the end of the last frame read."""
        if self.info.duration_ms > 0:
            return self.info.duration_ms
        return self.last_frame_ms + 1000 / self.info.fps

    def check_sampling(self, fps: float) -> None:
        """Refuse up front a request that would analyse more frames than allowed."""
        expected = self.info.duration_ms / 1000 * min(fps, self.info.fps)
        if expected > self.limits.max_frames_analysed:
            raise ImageRejected(
                413,
                "too_many_frames",
                f"about {expected:.0f} frames at {fps:g} fps exceed the {self.limits.max_frames_analysed} frame limit; "
                "lower fps or send a shorter clip",
            )

    def frames(self, fps: float, stop: threading.Event | None = None) -> Iterator[SampledFrame]:
        """Frames at most `fps` per second of video time, by each frame's own timestamp (variable rates work).

        `stop` is checked before every frame, skipped ones included, so a clip of endless skipped
        frames ends as soon as its request does."""
        interval_ms = 1000 / fps
        next_ms = 0.0
        analysed = 0
        waited = 0.0
        last_ms = 0.0
        stop = stop or threading.Event()
        while self.capture is not None and not stop.is_set():
            started = time.perf_counter()
            if not self.capture.grab():
                self._note_early_end(last_ms, interval_ms)
                break
            time_ms = last_ms = self.last_frame_ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
            self._check_duration(time_ms)
            if time_ms + 0.5 < next_ms:  # half a millisecond: timestamps are rounded in some containers
                waited += time.perf_counter() - started
                continue
            ok, image = self.capture.retrieve()
            if not ok or image is None:
                self.partial_reason = f"a frame at {time_ms:.0f} ms cannot be decoded; the clip ends there"
                break
            self._check_pixels(image.shape[1], image.shape[0])
            analysed += 1
            if analysed > self.limits.max_frames_analysed:
                limit = self.limits.max_frames_analysed
                raise ImageRejected(413, "too_many_frames", f"more than {limit} frames to analyse")
            decode_seconds = waited + time.perf_counter() - started
            waited = 0.0
            next_ms += interval_ms
            if next_ms <= time_ms:  # after a gap in a variable-rate clip, keep the spacing from here
                next_ms = time_ms + interval_ms
            yield SampledFrame(round(time_ms, 1), image, decode_seconds)

    def _note_early_end(self, last_ms: float, interval_ms: float) -> None:
        """A clip whose frames stop well before its declared duration is truncated or corrupt: say so."""
        declared_ms = self.info.duration_ms
        if declared_ms > 0 and last_ms < declared_ms - max(2 * 1000 / self.info.fps, interval_ms):
            self.partial_reason = f"the frames end at {last_ms:.0f} ms of the declared {declared_ms:.0f} ms"

    def first_frame_decodes(self) -> bool:
        """Whether a frame decodes: the check a queued clip gets before it is accepted. It consumes that
        frame, so it is for clips that are closed afterwards, not analysed."""
        return self.capture is not None and bool(self.capture.read()[0])

    def close(self) -> None:
        """Drop the decoder. Not `release()`: on a capture reading a Python stream it crashes OpenCV 5.0
        (the destructor frees the same resources safely)."""
        self.capture = None
