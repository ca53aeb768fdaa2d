"""One glibc malloc arena for the whole process.

glibc gives each thread that allocates its own arena, and memory freed in a thread's arena goes
back to the kernel. The service decodes and detects in worker threads, each image allocating and
freeing a few MB, so every request faulted those pages in again: about 2,100 page faults per
640x480 image, which made decoding 1.1 -> 2.0 ms and detection 13.5 -> 16 ms slower in a worker
thread than in the main thread. With one arena the worker threads keep their pages and run as fast
as the main thread, resident memory is lower, and throughput under load did not suffer from the
shared arena's lock (measured in `make bench`).
"""

from __future__ import annotations

import ctypes
import platform

M_ARENA_MAX = -8  # from glibc's malloc.h


def use_one_malloc_arena() -> bool:
    """Limit glibc to one arena; call before worker threads start. False where libc is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1))
