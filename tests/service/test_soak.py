"""Thousands of requests against a real server: resident memory must not grow."""

from concurrent.futures import ThreadPoolExecutor

import httpx

from service.devserver import running_service
from tests.conftest import fer_faces, jpeg
from training.scenes import place_faces

PHOTO = jpeg(place_faces(fer_faces("happy", 1) + fer_faces("sad", 1), 240, 400, 110, seed=80).image)


def send(base: str, count: int) -> list[int]:
    with httpx.Client(timeout=60) as client:
        return [
            client.post(f"{base}/v1/predict", files={"files": ("a.jpg", PHOTO, "image/jpeg")}).status_code
            for _ in range(count)
        ]


def test_memory_stays_flat_over_thousands_of_requests() -> None:
    with running_service(log_level="warning") as service, ThreadPoolExecutor(4) as pool:
        warm = [s for r in pool.map(send, [service.base] * 4, [100] * 4) for s in r]
        after_warm_up = service.rss_mb()
        soak = [s for r in pool.map(send, [service.base] * 4, [500] * 4) for s in r]
        after_soak = service.rss_mb()
    assert set(warm) == set(soak) == {200}
    assert after_soak <= after_warm_up * 1.10, (after_warm_up, after_soak)
