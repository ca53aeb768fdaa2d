"""A webhook receiver on loopback that answers as scripted and keeps every delivery it got."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    url: str
    answers: list[int]  # statuses to answer, in order; 200 once they run out
    deliveries: list[Delivery] = field(default_factory=list)


@contextlib.contextmanager
def webhook_receiver(answers: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver("", list(answers or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
            status = receiver.answers.pop(0) if receiver.answers else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/emotion"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
