"""What a live stream (/v1/stream) needs on both clients: its URL, how a key and options travel,
and what a close code means."""

from __future__ import annotations

import json
from typing import Any

SUBPROTOCOL = "emotion-stream"
NORMAL_CLOSE = 1000


class StreamClosed(Exception):
    """The service closed the stream: 1008 (a bad option or key), 1009 (a frame too large), 1011 (its
    fault), 1013 (at capacity or past the key's daily media quota: try later)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"stream closed {code}: {reason}")
        self.code, self.reason = code, reason


def stream_url(base_url: str, model: str | None) -> str:
    url = base_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/v1/stream"
    return f"{url}?model={model}" if model else url


def subprotocols(api_key: str | None) -> list[str]:
    """The key travels as a subprotocol, never in the URL (URLs end up in logs)."""
    return [SUBPROTOCOL, f"key.{api_key}"] if api_key else [SUBPROTOCOL]


def first_message(smoothing: float | None, max_fps: float | None) -> str:
    options: dict[str, Any] = {"smoothing": smoothing, "max_fps": max_fps}
    return json.dumps({k: v for k, v in options.items() if v is not None})
