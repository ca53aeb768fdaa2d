"""Jobs against the synchronous endpoint: 100 short clips submitted at once to two replicas sharing
one PostgreSQL and one uploads folder, against the same clips posted to /v1/video on the same replicas."""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx

from tests.helpers.clips import clip_bytes
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.postgres import postgres_server

CLIP = "asl-please.mp4"
CLIENTS = 8  # concurrent synchronous requests, spread over the replicas
WORKERS = CLIENTS // 2  # job workers per replica: as many as synchronous requests reach it


def sync_clips_per_s(replicas: list[LiveService], clip: bytes, clips: int) -> float:
    def post(index: int) -> None:
        answer = httpx.post(f"{replicas[index % 2].base}/v1/video", files={"file": (CLIP, clip)}, timeout=600)
        answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(post, range(clips)))
    return clips / (time.perf_counter() - started)


def jobs_run(replicas: list[LiveService], clip: bytes, clips: int) -> dict:
    def submit(index: int) -> tuple[int, str]:
        base = replicas[index % 2].base
        answer = httpx.post(f"{base}/v1/jobs", files={"file": (CLIP, clip)}, timeout=600)
        answer.raise_for_status()
        return index, answer.json()["job_id"]

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        submitted = list(pool.map(submit, range(clips)))
    wanted = {job_id for _, job_id in submitted}
    finished: dict[str, dict] = {}
    while len(finished) < clips:  # one listing a poll (the replicas share the store), not a request a job
        time.sleep(0.5)
        listed = httpx.get(f"{replicas[0].base}/v1/jobs", params={"limit": 100}).json()["jobs"]
        finished |= {
            j["job_id"]: j
            for j in listed
            if j["job_id"] in wanted and j["status"] != "queued" and j["status"] != "running"
        }
    elapsed = time.perf_counter() - started
    waits = sorted(
        (datetime.fromisoformat(j["started_at"]) - datetime.fromisoformat(j["created_at"])).total_seconds()
        for j in finished.values()
    )
    return {
        "succeeded": sum(j["status"] == "succeeded" for j in finished.values()),
        "retried": sum(j["attempts"] > 1 for j in finished.values()),
        "jobs_per_s": round(clips / elapsed, 3),
        "queue_s_p50": round(statistics.median(waits), 2),
        "queue_s_p95": round(waits[int(0.95 * (len(waits) - 1))], 2),
        "queue_s_max": round(waits[-1], 2),
    }


def bench_jobs(clips: int = 100) -> dict:
    clip = clip_bytes(CLIP)
    with postgres_server() as url, tempfile.TemporaryDirectory() as media:
        settings = {"database_url": url, "media_store": media, "job_workers": WORKERS}
        with running_service(**settings) as first, running_service(**settings) as second:
            replicas = [first, second]
            sync_clips_per_s(replicas, clip, 4)  # warm-up
            sync = sync_clips_per_s(replicas, clip, clips)
            jobs = jobs_run(replicas, clip, clips)
    return {
        "clips": clips,
        "clip": CLIP,
        "replicas": 2,
        "workers_per_replica": WORKERS,
        "sync_clips_per_s": round(sync, 3),
        **jobs,
        "jobs_vs_sync": round(jobs["jobs_per_s"] / sync, 3),
    }


if __name__ == "__main__":
    print(bench_jobs())
