"""emotion-batch on a local Ray against the service's pipeline in one process, on the same archive.

Both sides use every core of the machine: the pipeline through onnxruntime's and OpenCV's threads,
the job through Ray's tasks and actors. Their ratio is Ray's cost per core.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import cv2

from batch.job import JobOptions, run_job
from service.config import Settings
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from training.data import load_split
from training.scenes import place_faces


def write_scenes(data: Path, folder: Path, count: int) -> list[Path]:
    """One real PublicTest face per 320x480 scene, as JPEG files: an archive of profile-like photos."""
    faces = load_split(data, "test").images.numpy()
    paths = []
    for i in range(count):
        scene = place_faces([faces[i % len(faces)]], 320, 480, 140, seed=i).image
        path = folder / f"{i:05d}.jpg"
        cv2.imwrite(str(path), scene, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def bench_batch(data: Path, images: int = 3000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        archive.mkdir()
        paths = write_scenes(data, archive, images)

        runtime = load_runtime(Settings(), Metrics())
        started = time.perf_counter()
        for path in paths:
            runtime.pipeline.analyse(path.read_bytes())
        in_process = images / (time.perf_counter() - started)
        del runtime

        report = run_job(JobOptions(str(archive), str(Path(tmp) / "out"), Settings()))
    batch = report.scored_images / report.seconds
    cores = os.cpu_count() or 1
    return {
        "images": images,
        "faces": report.outcomes.faces,
        "cores": cores,
        "in_process_images_per_s": round(in_process, 1),
        "batch_images_per_s": round(batch, 1),
        "batch_images_per_s_per_core": round(batch / cores, 1),
        "batch_vs_in_process": round(batch / in_process, 3),
    }
