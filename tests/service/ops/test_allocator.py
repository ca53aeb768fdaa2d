"""The worker threads that decode and detect share the main malloc arena, whose free pages go back to the
kernel (see service.ops.allocator)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from service.config import PROJECT_ROOT
from tests.helpers.data import fer2013_dir

fer2013_dir()  # the child processes below decode a real face

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas only")

# Runs in a fresh process: arenas belong to a process, and the test process has had threads for a while.
COUNT_ARENAS = """
import ctypes, sys
from concurrent.futures import ThreadPoolExecutor
from service.config import Settings
from service.api.app import create_app
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces

libc = ctypes.CDLL("libc.so.6")
libc.open_memstream.restype = ctypes.c_void_p

def arenas():
    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size)))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    return ctypes.string_at(buffer, size.value).count(b"<heap nr=")

if sys.argv[1] == "app":
    create_app()
pipeline = load_runtime(Settings(), Metrics()).pipeline
scene = jpeg(place_faces(fer_faces("happy", 1), 480, 640, 180, seed=1).image)
ThreadPoolExecutor(1).submit(pipeline.prepare, scene).result()
print(arenas())
"""


def run_python(code: str, *args: str) -> str:
    """What `code` prints, run in a fresh process with glibc's own malloc defaults."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True).stdout


def arenas_after_a_worker_thread_prepares_an_image(setup: str) -> int:
    return int(run_python(COUNT_ARENAS, setup))


def test_worker_threads_allocate_from_the_main_arena_once_the_app_is_created() -> None:
    assert arenas_after_a_worker_thread_prepares_an_image("plain") > 1  # glibc's default: an arena per thread
    assert arenas_after_a_worker_thread_prepares_an_image("app") == 1


# Free holes below live blocks, as uploads of every size leave them: glibc keeps them until trimmed.
HOLES_IN_THE_HEAP = """
import random
from pathlib import Path
from service.ops.allocator import return_free_pages, keep_one_warm_heap

def rss_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) // 1024

keep_one_warm_heap()
large = bytearray(8_000_000)
del large  # as after the first large upload: glibc now keeps blocks this size in the heap, not in mmaps
rng = random.Random(0)
blocks = [bytearray(rng.randrange(10_000, 1_000_000)) for _ in range(1000)]
live = blocks[::25]
del blocks
held = rss_mb()
returned = return_free_pages()
print(held, rss_mb(), returned)
"""


def test_free_pages_inside_the_heap_go_back_to_the_kernel() -> None:
    held, after, returned = run_python(HOLES_IN_THE_HEAP).split()
    assert returned == "True"
    assert int(held) > 300 and int(after) < int(held) / 4  # 505 -> 41 MB when measured


# A request's buffers freed at the top of the heap, after a larger image had set glibc's dynamic thresholds.
REQUESTS = """
import resource, sys
from service.ops.allocator import keep_one_warm_heap

if sys.argv[1] == "warm":
    keep_one_warm_heap()

def request():
    buffers = [b"x" * 600_000 for _ in range(12)]
    del buffers

image = b"x" * 1_200_000  # handed back from an mmap: glibc now trims the heap's top past 2.4 MB
del image
request()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    request()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 20)
"""


def test_each_request_reuses_the_pages_the_last_one_freed() -> None:
    assert int(run_python(REQUESTS, "plain")) > 1000  # 1,726 when measured: 7 MB faulted in again
    assert int(run_python(REQUESTS, "warm")) < 50  # 0 when measured
