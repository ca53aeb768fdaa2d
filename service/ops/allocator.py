"""One warm glibc malloc heap for the whole process, its free pages handed back to the kernel every few seconds.

The service decodes and detects in worker threads, each image allocating and freeing a few MB. With
glibc's defaults those pages went back to the kernel after every request and the next request faulted
them in again: about 2,200 page faults per 640x480 photo. Two settings keep them:
- one arena: glibc otherwise gives each allocating thread an arena of its own, which hands freed memory
  back at once (in a worker thread, decoding took 2.0 ms instead of 1.1 and detection 16 instead of 13.5);
- fixed thresholds at glibc's own 64-bit ceilings (mmap 32 MiB, trim 64 MiB): its dynamic thresholds
  follow the largest block it ever handed back from an mmap (about 1 MB here, an image), so the few MB a
  request freed at the top of the heap were trimmed after every request.
With both, a /v1/predict photo faults about 7 pages; side by side, p50 33 -> 29 ms and 8 concurrent
clients 7% more images/s, for 5 to 25 MB more RSS. The shared arena's lock did not slow the service
under load (measured in `make bench`).

Kept pages have a price: by itself glibc returns only free memory at the top of the heap, and uploads of
every size (buffers grown chunk by chunk as bodies arrive) leave free holes below live blocks: under
mutated photos and clips on one keep-alive connection, RSS rose about 150 MB per 1,000 requests, all of
it free memory glibc held. `malloc_trim(0)` every few seconds returns the free pages inside the heap too:
RSS stays flat, the hot pages of the next request are faulted in once per interval, not per request, and
a trim takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import platform
from collections.abc import AsyncIterator

# From glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
# glibc's own ceilings for its dynamic thresholds on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX, and twice that).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES
TRIM_EVERY_S = 5.0


def _glibc() -> ctypes.CDLL | None:
    return ctypes.CDLL("libc.so.6") if platform.libc_ver()[0] == "glibc" else None


def keep_one_warm_heap() -> bool:
    """One arena whose freed pages stay for the next request until the periodic trim; call before worker
    threads start. False where libc is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return all(libc.mallopt(option, value) for option, value in settings)


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
