"""Benchmarks of clips, live streams, and the emotion models side by side (`python -m benchmarks.run`).

Each comparison is measured in one run, alternating its two sides, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import websockets

from service.config import Settings
from service.ops.metrics import Metrics
from service.runtime import Runtime, load_runtime
from service.video.analysis import ClipAnalysis, open_clip
from tests.helpers.clips import clip_frames
from tests.helpers.live_service import running_service

ROUNDS = 3


def minute_clip(path: Path, seconds: float = 60, fps: float = 25) -> bytes:
    """A 720p clip of two people (the shared two-person clip, upscaled and looped) at a camera's rate."""
    source = clip_frames("two-people-head-pose.webm")  # 12 fps
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
    for n in range(round(seconds * fps)):
        frame = source[int(n * 12 / fps) % len(source)]
        writer.write(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_CUBIC))
    writer.release()
    return path.read_bytes()


def stage_seconds(metrics: Metrics) -> dict[str, float]:
    sample = metrics.registry.get_sample_value
    stages = ("video_decode", "detect", "detect_region", "align", "classify")
    return {s: sample("emotion_stage_duration_seconds_sum", {"stage": s}) or 0.0 for s in stages}


async def analyse_in_process(runtime: Runtime, data: bytes, fps: float) -> int:
    clip = open_clip(data, fps, runtime.settings)
    classifier = runtime.emotion().classifier

    def timed(crops: np.ndarray) -> np.ndarray:
        with runtime.metrics.stage_seconds.labels("classify").time():  # as the batcher records it
            return classifier(crops)

    async def classify(crops: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(timed, crops)  # off the loop, as the batcher does

    analysis = ClipAnalysis(
        clip, fps, runtime.pipeline, classify, runtime.metrics, runtime.settings.tracking, 1.0, keep_timeline=False
    )
    return (await analysis.run()).frames_analysed


def bench_video(workdir: Path, detection: str, model: str = "emotion", fps: float = 5) -> dict:
    """A one-minute 720p clip at 5 fps: over HTTP against the same work in-process, alternated.

    The clip loops the shared two-person clip, so the people jump back at each loop: tracks restart there.
    """
    data = minute_clip(workdir / "minute.mp4")
    metrics = Metrics()
    chosen = {"detection": detection, "default_emotion_model": model}
    runtime = load_runtime(Settings(**chosen), metrics)
    http_s, local_s = [], []
    with running_service(log_level="warning", **chosen) as service:
        rss_before = service.rss_mb()
        for _ in range(2):
            started = time.perf_counter()
            response = httpx.post(f"{service.base}/v1/video", params={"fps": fps}, files={"file": data}, timeout=600)
            response.raise_for_status()
            http_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            frames = asyncio.run(analyse_in_process(runtime, data, fps))
            local_s.append(time.perf_counter() - started)
        rss_after = service.rss_mb()
    body = response.json()
    shares = stage_seconds(metrics)
    total = sum(shares.values())
    duration_s = body["video"]["duration_ms"] / 1000
    http, local = statistics.median(http_s), statistics.median(local_s)
    return {
        "detection": detection,
        "model": model,
        "clip": f"{body['video']['width']}x{body['video']['height']}, {duration_s:.0f} s at "
        f"{body['video']['fps']:g} fps, {body['summary']['people']} people",
        "frames_analysed": frames,
        "http_s": round(http, 2),
        "in_process_s": round(local, 2),
        "http_vs_in_process": round(local / http, 3),
        "times_real_time": round(duration_s / http, 2),
        "shares": {stage: round(seconds / total, 3) for stage, seconds in shares.items()},
        "rss_mb_before": rss_before,
        "rss_mb_after_two_clips": rss_after,
    }


async def one_stream(url: str, frames: list[bytes], fps: float, seconds: float, first: dict | None = None) -> dict:
    """Send frames at a camera's pace and read answers as they come; client-side latency per answer.
    `first`: the stream's first message (its options), if any."""
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    answers = dropped = 0
    async with websockets.connect(url, subprotocols=["emotion-stream"], max_size=None) as ws:
        if first is not None:
            await ws.send(json.dumps(first))

        async def receive() -> None:
            nonlocal answers, dropped
            async for message in ws:
                answer = json.loads(message)
                latencies.append(time.perf_counter() - sent_at[answer["frame"]])
                answers, dropped = answers + 1, answer["dropped"]

        reader = asyncio.create_task(receive())
        started = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            sent_at[n] = time.perf_counter()
            await ws.send(frames[n % len(frames)])
            n += 1
            await asyncio.sleep(max(0.0, started + n / fps - time.perf_counter()))
        await asyncio.sleep(1.0)  # the last answers
        reader.cancel()
    return {"sent": n, "answers": answers, "dropped": dropped, "latencies": latencies, "seconds": elapsed}


async def streams_at_once(
    url: str, frames: list[bytes], count: int, fps: float, seconds: float, first: dict | None = None
) -> list[dict]:
    return await asyncio.gather(*(one_stream(url, frames, fps, seconds, first) for _ in range(count)))


def bench_streams(
    detection: str, fps: float = 15, seconds: float = 20, model: str | None = None, first_message: dict | None = None
) -> list[dict]:
    """One stream of 640x480 frames at 15 fps, then eight at once (each opened with `first_message`)."""
    frames = [
        cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in clip_frames("asl-please.mp4")
    ]
    rows = []
    with running_service(log_level="warning", detection=detection) as service:
        url = service.base.replace("http://", "ws://") + "/v1/stream" + (f"?model={model}" if model else "")
        for count in (1, 8):
            results = asyncio.run(streams_at_once(url, frames, count, fps, seconds, first_message))
            latencies = sorted(v for r in results for v in r["latencies"])
            sent = sum(r["sent"] for r in results)
            rows.append(
                {
                    "streams": count,
                    "detection": detection,
                    "model": model or "default",
                    "answered_fps_per_stream": round(statistics.mean(r["answers"] / r["seconds"] for r in results), 1),
                    "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
                    "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
                    "dropped_share": round(sum(r["dropped"] for r in results) / sent, 3),
                }
            )
    return rows


def bench_models(crops: np.ndarray) -> dict:
    """Every served emotion model's crops/s at batch 8 and 32, in alternating rounds; medians."""
    runtime = load_runtime(Settings(), Metrics())
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for name, served in runtime.emotion_models.items():
            for batch in (8, 32):
                x = np.resize(crops, (batch, *crops.shape[1:]))
                classifier = served.classifier
                classifier(x)
                calls, started = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - started) < 2.0:
                    classifier(x)
                    calls += 1
                rates.setdefault((name, batch), []).append(batch * calls / elapsed)
    rows = {f"{name} batch {batch}": round(statistics.median(r), 1) for (name, batch), r in rates.items()}
    names = list(runtime.emotion_models)
    ratios = {}
    if len(names) > 1:
        accurate, fast = runtime.default_model, next(n for n in names if n != runtime.default_model)
        for batch in (8, 32):
            ratios[f"{fast} / {accurate}, batch {batch}"] = round(
                rows[f"{fast} batch {batch}"] / rows[f"{accurate} batch {batch}"], 2
            )
    return {"crops_per_s": rows, "ratios": ratios}
