"""GET /v1/stream, upgraded to a WebSocket: camera frames in, one JSON answer per analysed frame out.

Browsers cannot set headers on a WebSocket, so an API key travels as a subprotocol
(`new WebSocket(url, ["emotion-stream", "key." + key])`) or in the first text message, and never
in the URL, which ends up in logs. The service answers with the `emotion-stream` subprotocol when
offered and never echoes a key.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket

from service.api.deps import owner_of
from service.inference.errors import UnknownModel
from service.jobs.queue import Jobs
from service.jobs.store import QuotaExceeded
from service.live.stream import INTERNAL_ERROR, POLICY_VIOLATION, TRY_AGAIN_LATER, LiveStream, close

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])
SUBPROTOCOL = "emotion-stream"
KEY_PREFIX = "key."


@router.websocket("/stream")
async def stream(
    websocket: WebSocket,
    model: Annotated[str | None, Query(description="Emotion model to use; default: the service's.")] = None,
) -> None:
    offered: list[str] = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    runtime = getattr(websocket.app.state, "runtime", None)
    if runtime is None or not runtime.serving or not runtime.streams.has_room():
        await close(websocket, TRY_AGAIN_LATER, "not ready or at the stream limit; retry shortly")
        return
    try:
        emotion = runtime.emotion(model)
    except UnknownModel as unknown:
        await close(websocket, POLICY_VIOLATION, unknown.message)
        return
    presented = next((p.removeprefix(KEY_PREFIX) for p in offered if p.startswith(KEY_PREFIX)), None)
    jobs: Jobs = websocket.app.state.jobs

    def admit(key: str | None) -> str | None:
        """The key's daily media quota, before the first frame (service.live.stream.Admit)."""
        owner = owner_of(websocket, key)
        try:
            jobs.usage.check_media_quota(owner)
        except QuotaExceeded as exceeded:
            jobs.quotas.refused(owner, exceeded.limit)
            return str(exceeded)
        return None

    live = LiveStream(websocket, runtime, emotion, websocket.app.state.api_keys, presented, admit)
    runtime.metrics.streams_open.inc()
    try:
        with runtime.streams.holding(live):
            await live.run()
    except Exception:
        # The stream's own errors end it with their codes; anything else is ours: 1011, no details.
        log.exception("live stream failed")
        await close(websocket, INTERNAL_ERROR, "internal error")
    finally:
        runtime.metrics.streams_open.dec()
        if live.admitted:  # a stream let in is one request of its key's, and its analysed seconds
            jobs.usage.add(owner_of(websocket, live.key), requests=1, media_seconds=live.analysed_s)
