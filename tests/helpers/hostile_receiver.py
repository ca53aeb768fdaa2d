"""Webhook receivers that misbehave on purpose, on loopback: they trickle, hang, or answer with bodies
no sender should read. Each counts the connections it took and when it first took one."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

HEAD_200 = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
BEHAVIOURS = ("trickle", "hang", "huge", "endless", "garbage", "odd-retry")


@dataclass
class Hostile:
    url: str
    connections: int = 0
    first_at: float | None = None  # time.monotonic() of the first connection
    closed_by_sender: list[float] = field(default_factory=list)  # when the sender hung up, per connection


def _serve(sock: socket.socket, behaviour: str, hostile: Hostile, stop: threading.Event) -> None:
    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            with contextlib.suppress(OSError):
                conn.recv(65536)  # the request (small: a webhook event)
                if behaviour == "huge":
                    conn.sendall(HEAD_200 + b"content-length: 104857600\r\n\r\n")
                    chunk = b"x" * 65536
                    for _ in range(1600):
                        conn.sendall(chunk)
                elif behaviour == "endless":
                    conn.sendall(HEAD_200 + b"transfer-encoding: chunked\r\n\r\n")
                    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
                    while not stop.is_set():
                        conn.sendall(chunk)
                elif behaviour == "garbage":  # not HTTP at all
                    conn.sendall(b"\x00\xff SSH-2.0-nope\r\n\r\n" * 8)
                elif behaviour == "odd-retry":  # 503 with a Retry-After of non-ASCII digits, then one far away
                    conn.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: "
                        + "\u0661\u0662".encode()
                        + b"\r\nretry-after: 999999999999\r\n\r\n"
                    )
                elif behaviour == "trickle":  # a byte of the status line every second, never finished
                    for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                        conn.sendall(bytes([byte]))
                        if stop.wait(1.0):
                            break
                else:  # "hang": accept, read, never answer
                    while not stop.is_set():
                        try:
                            if conn.recv(1024) == b"":
                                break
                        except TimeoutError:
                            continue
            hostile.closed_by_sender.append(time.monotonic())

    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        hostile.connections += 1
        hostile.first_at = hostile.first_at or time.monotonic()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


@contextlib.contextmanager
def hostile_receiver(behaviour: str) -> Iterator[Hostile]:
    """behaviour: "trickle", "hang", "huge" (a 100 MB body), "endless" (a chunked body without end), "garbage"
    (an answer that is not HTTP) or "odd-retry" (503 with Retry-After values no sender should trust)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    hostile = Hostile(f"http://127.0.0.1:{sock.getsockname()[1]}/hook?token=receiver-secret")
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(sock, behaviour, hostile, stop), daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
