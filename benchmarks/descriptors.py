"""What the descriptors cost: a photo's analysis with and without them, alternated over rounds on the
same scenes, and eight camera streams with them on."""

from __future__ import annotations

import datetime
import statistics
import time
from pathlib import Path

from benchmarks.media import bench_streams
from service.config import Settings
from service.ops.metrics import Metrics
from service.runtime import load_runtime, warm_up

ROUNDS = 3


def seconds_per_image(prepare, data: bytes, describe: bool, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        prepare(data, describe)
    return (time.perf_counter() - started) / repeats


def bench_descriptors(scenes: dict[str, bytes]) -> dict:
    """Per scene: ms per image without and with descriptors (medians of alternated rounds), the extra
    ms per face, and the ratio; then the stream capacity with descriptors on (emotion-fast, region)."""
    runtime = load_runtime(Settings(), Metrics())
    warm_up(runtime)
    prepare = runtime.pipeline.prepare  # detection, alignment and, with describe, the face mesh
    rows = []
    for name, data in scenes.items():
        faces = len(prepare(data).faces)
        plain, described = [], []
        for _ in range(ROUNDS):
            plain.append(seconds_per_image(prepare, data, False, 20))
            described.append(seconds_per_image(prepare, data, True, 20))
        off, on = statistics.median(plain), statistics.median(described)
        rows.append(
            {
                "scene": name,
                "faces": faces,
                "ms_without": round(1000 * off, 1),
                "ms_with": round(1000 * on, 1),
                "ms_per_face": round(1000 * (on - off) / faces, 1),
                "ratio": round(on / off, 2),
            }
        )
    streams = bench_streams("region", model="emotion-fast", first_message={"descriptors": True})
    return {"measured": f"{datetime.date.today()} on {cpu_name()}", "photos": rows, "streams": streams}


def cpu_name() -> str:
    """This machine's processor, as /proc/cpuinfo names it: a section measured apart says where."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def descriptors_markdown(measured: dict) -> list[str]:
    lines = [
        "",
        f"Descriptors, measured {measured['measured']} (2 cores):",
        "",
        "| descriptors, in process | faces | ms without | ms with | extra ms per face | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['scene']} | {r['faces']} | {r['ms_without']} | {r['ms_with']} | **{r['ms_per_face']}** | {r['ratio']} |"
        for r in measured["photos"]
    ]
    for row in measured["streams"]:
        lines.append(
            f"- Streams with descriptors ({row['streams']} at 15 fps, region detection, emotion-fast): "
            f"**{row['answered_fps_per_stream']}** answered frames a second each, p50 {row['p50_ms']} ms."
        )
    return lines
