"""A real uvicorn process: graceful shutdown on SIGTERM, and shedding a burst from several processes."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest

from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import running_service
from training.scenes import place_faces

HEAVY = jpeg(place_faces(fer_faces("happy", 8) + fer_faces("sad", 8), 1200, 1600, 200, seed=40).image)
LIGHT = jpeg(place_faces(fer_faces("neutral", 1), 240, 320, 120, seed=41).image)


def in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("emotion_requests_in_flight "):
            return float(line.split()[1])
    return 0.0


def test_sigterm_turns_unready_finishes_accepted_requests_and_exits_0() -> None:
    with running_service() as service:
        base, process = service.base, service.process
        results: dict = {}

        def heavy_request() -> None:
            files = [("files", (f"{i}.jpg", HEAVY, "image/jpeg")) for i in range(16)]
            results["response"] = httpx.post(f"{base}/v1/predict", files=files, timeout=60)

        worker = threading.Thread(target=heavy_request)
        worker.start()
        deadline = time.time() + 20
        while in_flight(base) < 1 and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        worker.join(timeout=60)
        assert process.wait(timeout=60) == 0
        stderr = service.log()
    response = results["response"]
    assert response.status_code == 200
    counts = {len(image["faces"]) for image in response.json()["images"]}
    assert len(response.json()["images"]) == 16 and len(counts) == 1 and counts.pop() >= 12  # all analysed
    assert "SIGTERM: readiness off" in stderr


def burst(base: str, requests: int) -> list[tuple[int, str | None]]:
    """One client process: `requests` uploads at once, returning (status, Retry-After) pairs."""
    import asyncio

    async def run() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{base}/v1/predict", files=[("files", ("a.jpg", HEAVY, "image/jpeg"))])
                    for _ in range(requests)
                )
            )
        return [(r.status_code, r.headers.get("retry-after")) for r in responses]

    return asyncio.run(run())


def test_a_burst_from_several_processes_is_shed_with_503_not_queued() -> None:
    with running_service(max_concurrent_requests=2) as service:
        base = service.base
        with ProcessPoolExecutor(max_workers=4) as pool:
            outcomes = [o for result in pool.map(burst, [base] * 4, [6] * 4) for o in result]
        statuses = [status for status, _ in outcomes]
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 2 and statuses.count(503) >= 1
        assert all(retry == "1" for status, retry in outcomes if status == 503)
        after = httpx.post(f"{base}/v1/predict", files=[("files", ("a.jpg", LIGHT, "image/jpeg"))], timeout=60)
        assert after.status_code == 200


def test_sigterm_drains_then_answers_the_frame_in_flight_and_closes_streams_with_1001() -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with running_service(drain_s=1.5) as service:
        url = service.base.replace("http://", "ws://") + "/v1/stream"
        with connect(url) as ws:
            ws.send(LIGHT)
            assert len(json.loads(ws.recv(timeout=30))["faces"]) == 1
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # Draining: not ready, yet still serving, with Connection: close.
            assert httpx.get(f"{service.base}/readyz").status_code == 503
            served = httpx.post(f"{service.base}/v1/predict", files=[("files", ("a.jpg", LIGHT, "image/jpeg"))])
            assert served.status_code == 200 and served.headers["connection"] == "close"
            ws.send(LIGHT)  # still answered, then the stream is closed as the drain ends
            assert len(json.loads(ws.recv(timeout=30))["faces"]) == 1
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == 1001
        assert service.process.wait(timeout=60) == 0
