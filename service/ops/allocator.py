"""One glibc malloc arena for the whole process, and its free pages handed back to the kernel.

glibc gives each thread that allocates its own arena, and memory freed in a thread's arena goes
back to the kernel. The service decodes and detects in worker threads, each image allocating and
freeing a few MB, so every request faulted those pages in again: about 2,100 page faults per
640x480 image, which made decoding 1.1 -> 2.0 ms and detection 13.5 -> 16 ms slower in a worker
thread than in the main thread. With one arena the worker threads keep their pages and run as fast
as the main thread, resident memory is lower, and throughput under load did not suffer from the
shared arena's lock (measured in `make bench`).

Kept pages have a price: glibc only returns free memory at the top of the heap, and uploads of every
size (buffers grown chunk by chunk as bodies arrive) leave free holes below live blocks. Under mutated
photos and clips on one keep-alive connection, RSS rose about 150 MB per 1,000 requests, all of it
free memory glibc held. `malloc_trim(0)` every few seconds returns the free pages inside the heap
too: RSS stays flat, the hot pages of the next request are faulted in once per interval, not per
request, and a trim takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import platform
from collections.abc import AsyncIterator

M_ARENA_MAX = -8  # from glibc's malloc.h
TRIM_EVERY_S = 5.0


def _glibc() -> ctypes.CDLL | None:
    return ctypes.CDLL("libc.so.6") if platform.libc_ver()[0] == "glibc" else None


def use_one_malloc_arena() -> bool:
    """Limit glibc to one arena; call before worker threads start. False where libc is not glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, 1))


def return_free_pages() -> bool:
    """Hand the kernel every free page of the heap, holes included. False where nothing was returned."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


@contextlib.asynccontextmanager
async def returning_free_pages(every_s: float = TRIM_EVERY_S) -> AsyncIterator[None]:
    """While the block runs, return the heap's free pages every `every_s` seconds."""

    async def trim_forever() -> None:
        while True:
            await asyncio.sleep(every_s)
            return_free_pages()

    task = asyncio.create_task(trim_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
