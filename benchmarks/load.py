"""Closed-loop HTTP load: `concurrency` clients, each posting the next request when its last one
answers, until `requests` are done or `seconds` pass. Prints one JSON line of results.

    python -m benchmarks.load URL IMAGE --concurrency 16 --requests 400 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np


async def run(url: str, image: bytes, concurrency: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued, errors
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            try:
                response = await client.post(url, files={"files": ("scene.jpg", image, "image/jpeg")})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "images_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("image", type=Path)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.image.read_bytes(), args.concurrency, args.requests, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
