"""Live streams: camera frames over a WebSocket, answered frame by frame with tracked, smoothed faces.

Backpressure without queueing: a receiver task reads every message as it arrives and keeps only the
newest frame; the analyser takes that one when it is free, and every frame replaced before it was
taken counts as dropped. Latency so stays near one frame's processing time however fast a client
sends. Each stream holds at most two frames (one waiting, one being analysed), and a stream that
ends for any reason cancels its receiver and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image
from service.ops.access import key_is_valid
from service.results import tracked_faces
from service.tracking.step import FrameStep, PreparedFrame, detection_schedule
from service.tracking.tracker import FaceTracker

if TYPE_CHECKING:  # the runtime holds the registry of streams below
    from service.runtime import Runtime, ServedModel

log = logging.getLogger(__name__)

# Asked with a stream's accepted key before its first frame: None admits it, a message refuses it.
Admit = Callable[[str | None], str | None]

# WebSocket close codes (RFC 6455, section 7.4.1).
NORMAL = 1000
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


class StreamClosed(Exception):
    """End the stream with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class StreamOptions:
    """What the optional first text message sets:
    `{"smoothing": seconds, "max_fps": n, "descriptors": true, "api_key": key}`."""

    smoothing_s: float
    max_fps: float | None = None
    api_key: str | None = None
    descriptors: bool = False


@dataclass
class _Frame:
    number: int
    data: bytes
    received_s: float


def number_in(value: object, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def parse_options(text: str, default_smoothing_s: float) -> StreamOptions:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        raise StreamClosed(POLICY_VIOLATION, "the first text message must be a JSON object") from None
    if not isinstance(message, dict) or set(message) - {"smoothing", "max_fps", "api_key", "descriptors"}:
        raise StreamClosed(POLICY_VIOLATION, 'configure with {"smoothing": seconds, "max_fps": n, "descriptors": true}')
    smoothing = message.get("smoothing", default_smoothing_s)
    max_fps, key = message.get("max_fps"), message.get("api_key")
    if not number_in(smoothing, 0, 60):
        raise StreamClosed(POLICY_VIOLATION, "smoothing must be a number of seconds from 0 to 60")
    if max_fps is not None and not number_in(max_fps, 0.1, 1000):
        raise StreamClosed(POLICY_VIOLATION, "max_fps must be a number from 0.1 up")
    if key is not None and not isinstance(key, str):
        raise StreamClosed(POLICY_VIOLATION, "api_key must be a string")
    descriptors = message.get("descriptors", False)
    if not isinstance(descriptors, bool):
        raise StreamClosed(POLICY_VIOLATION, "descriptors must be true or false")
    return StreamOptions(float(smoothing), None if max_fps is None else float(max_fps), key, descriptors)


class LiveStream:
    """One accepted WebSocket, from its first frame to its close."""

    def __init__(
        self,
        websocket: WebSocket,
        runtime: Runtime,
        emotion: ServedModel,
        keys: list[str],
        presented_key: str | None,
        admit: Admit,
    ) -> None:
        """`admit` is asked once, with the accepted key, before the first frame: a refusal (the key's
        daily media quota) closes the stream with 1013."""
        self.websocket = websocket
        self.admit, self.admitted = admit, False
        self.runtime = runtime
        self.emotion = emotion
        self.settings = runtime.settings
        self.metrics = runtime.metrics
        self.keys = keys
        self.authorised = not keys or key_is_valid(presented_key, keys)
        self.key = presented_key if self.authorised else None  # the accepted key, for its owner's usage
        self.analysed_from_s: float | None = None  # the first and last analysed frames: the media seconds
        self.analysed_to_s = 0.0
        self.options = StreamOptions(self.settings.stream_smoothing_s)
        tracking = self.settings.tracking
        self.tracker = FaceTracker(self.options.smoothing_s, tracking.max_gap_s)
        self.step = FrameStep(runtime.pipeline, self.tracker, detection_schedule(tracking))
        self.started = time.monotonic()
        self.pending: _Frame | None = None
        self.frame_arrived = asyncio.Event()
        self.received = 0
        self.dropped = 0
        self.closing: StreamClosed | None = None  # set by the receiver, or by a shutdown
        self.gone = False  # the client disconnected: nothing to answer or close

    def stop(self, code: int, reason: str) -> None:
        """Ask the stream to close once the frame in flight is answered (used at shutdown)."""
        if self.closing is None:
            self.closing = StreamClosed(code, reason)
        self.frame_arrived.set()

    async def run(self) -> None:
        receiver = asyncio.create_task(self._receive())
        # However the receiver ends, the analyser must not wait for frames that will never come.
        receiver.add_done_callback(lambda _: self.stop(INTERNAL_ERROR, "internal error"))
        try:
            await self._analyse()
        finally:
            receiver.cancel()
            self.pending = None
        if self.closing is not None and not self.gone:
            await close(self.websocket, self.closing.code, self.closing.reason)

    async def _receive(self) -> None:
        """Read every message at once, keep the newest frame, and note why the stream ends.

        A stream that still owes its key gets only a few seconds to send it, not the idle timeout."""
        first = True
        try:
            while True:
                message = await self._next_message()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", NORMAL))
                data = message.get("bytes")
                if first and data is None:
                    self._configure(message.get("text") or "")
                    first = False
                    continue
                first = False
                if not self.authorised:
                    raise StreamClosed(POLICY_VIOLATION, "an API key is required: subprotocol key.<key>, or api_key")
                if not self.admitted:
                    if refusal := await asyncio.to_thread(self.admit, self.key):
                        raise StreamClosed(TRY_AGAIN_LATER, refusal)
                    self.admitted = True
                if data is None:
                    raise StreamClosed(POLICY_VIOLATION, "after the first message, send frames as binary messages")
                if len(data) > self.settings.stream_max_frame_bytes:
                    raise StreamClosed(MESSAGE_TOO_BIG, f"a frame exceeds {self.settings.stream_max_frame_bytes} bytes")
                self.metrics.stream_frames.labels("received").inc()
                if self.pending is not None:
                    self.dropped += 1
                    self.metrics.stream_frames.labels("dropped").inc()
                self.pending = _Frame(self.received, data, time.monotonic() - self.started)
                self.received += 1
                self.frame_arrived.set()
        except WebSocketDisconnect:
            self.gone = True
            self.frame_arrived.set()
        except StreamClosed as closed:
            self.stop(closed.code, closed.reason)
        except Exception:
            log.exception("a live stream's receiver failed")
            self.stop(INTERNAL_ERROR, "internal error")

    @property
    def analysed_s(self) -> float:
        """Seconds of the stream between its first and last analysed frames."""
        return 0.0 if self.analysed_from_s is None else self.analysed_to_s - self.analysed_from_s

    async def _next_message(self) -> dict:
        """The next message, within the idle timeout, or within the key timeout while the key is still owed."""
        if self.authorised:
            wait, reason = self.settings.stream_idle_timeout_s, "no frame for {:g} s"
        else:
            wait, reason = self.settings.stream_auth_timeout_s, "no API key within {:g} s"
        try:
            return await asyncio.wait_for(self.websocket.receive(), wait)
        except TimeoutError:
            code = NORMAL if self.authorised else POLICY_VIOLATION
            raise StreamClosed(code, reason.format(wait)) from None

    def _configure(self, text: str) -> None:
        """Apply the first text message; anything unreadable in it closes the stream with 1008 (fail closed)."""
        try:
            self.options = parse_options(text, self.settings.stream_smoothing_s)
            if not self.authorised:
                self.authorised = key_is_valid(self.options.api_key, self.keys)
                self.key = self.options.api_key
        except StreamClosed:
            raise
        except Exception:
            raise StreamClosed(POLICY_VIOLATION, "the first text message cannot be read") from None
        if not self.authorised:
            raise StreamClosed(POLICY_VIOLATION, "an API key is required: subprotocol key.<key>, or api_key")
        self.tracker.smoothing_s = self.options.smoothing_s
        self.step.describe = self.options.descriptors

    async def _analyse(self) -> None:
        last_started = None
        while True:
            await self.frame_arrived.wait()
            self.frame_arrived.clear()
            if self.closing is not None or self.gone:
                return
            if self.options.max_fps and last_started is not None:
                wait = last_started + 1 / self.options.max_fps - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # frames arriving meanwhile replace the pending one
            frame, self.pending = self.pending, None
            if frame is None:
                continue
            last_started = time.monotonic()
            await self._answer(frame)

    async def _answer(self, frame: _Frame) -> None:
        try:
            prepared = await asyncio.to_thread(self._prepare, frame)
        except ImageRejected as rejection:
            self.metrics.rejected.labels(rejection.reason).inc()
            self.metrics.stream_frames.labels("rejected").inc()
            error = {"code": rejection.code, "message": rejection.message}
            await self._send({"frame": frame.number, "error": error})
            return
        faces = await self.step.track(prepared, self.emotion.batcher.classify)
        classes = self.emotion.classifier.classes
        latency_s = time.monotonic() - self.started - frame.received_s
        message = {
            "frame": frame.number,
            "received_ms": round(frame.received_s * 1000, 1),
            "latency_ms": round(latency_s * 1000, 1),
            "dropped": self.dropped,
            "faces": [face.model_dump() for face in tracked_faces(faces, classes)],
        }
        await self._send(message)
        if self.analysed_from_s is None:
            self.analysed_from_s = frame.received_s
        self.analysed_to_s = frame.received_s
        self.metrics.stream_frames.labels("analysed").inc()
        self.metrics.stream_latency_seconds.observe(latency_s)

    async def _send(self, message: dict) -> None:
        """Send an answer; a client that left meanwhile ends the stream quietly (it is not an error of ours)."""
        try:
            await self.websocket.send_text(json.dumps(message))
        except WebSocketDisconnect:
            self.gone = True
            self.frame_arrived.set()

    def _prepare(self, frame: _Frame) -> PreparedFrame:
        """Decode, then the frame step's blocking half: the part of a frame that runs in a worker thread."""
        image = decode_image(frame.data, self.settings.stream_max_frame_bytes, self.settings.stream_max_frame_pixels)
        return self.step.prepare(frame.received_s, image)


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close if the socket is still open; a client that already left needs no close frame."""
    if websocket.client_state is WebSocketState.CONNECTED:
        with suppress(RuntimeError, WebSocketDisconnect):  # the client left meanwhile
            await websocket.close(code, reason[:120])  # a close reason is at most 123 bytes
