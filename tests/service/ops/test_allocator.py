"""The worker threads that decode and detect share the main malloc arena (see service.ops.allocator)."""

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


def arenas_after_a_worker_thread_prepares_an_image(setup: str) -> int:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    command = [sys.executable, "-c", COUNT_ARENAS, setup]
    return int(subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True).stdout)


def test_worker_threads_allocate_from_the_main_arena_once_the_app_is_created() -> None:
    assert arenas_after_a_worker_thread_prepares_an_image("plain") > 1  # glibc's default: an arena per thread
    assert arenas_after_a_worker_thread_prepares_an_image("app") == 1
