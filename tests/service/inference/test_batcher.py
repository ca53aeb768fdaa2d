import asyncio
import time

import numpy as np
import pytest

from service.config import Settings
from service.inference.batcher import MicroBatcher
from service.inference.classifier import EmotionClassifier
from service.inference.model_store import resolve
from service.ops.metrics import Metrics
from tests.helpers.faces import fer_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


@pytest.fixture(scope="module")
def classifier(settings: Settings) -> EmotionClassifier:
    return EmotionClassifier(resolve(settings.model_store, settings.default_emotion_model))


def observed(metrics: Metrics, name: str, suffix: str) -> float:
    return metrics.registry.get_sample_value(f"{name}_{suffix}", {"model": "emotion"}) or 0.0


async def classify_concurrently(batcher: MicroBatcher, groups: list[np.ndarray]) -> list[np.ndarray]:
    """Requests as the route makes them: reserve first, submit after some preparation time."""

    async def request(index: int, crops: np.ndarray) -> np.ndarray:
        with batcher.reserve() as classify:
            await asyncio.sleep(0.01 * index)  # decoding and detection take a while
            return await classify(crops)

    batcher.start()
    try:
        return await asyncio.gather(*(request(i, g) for i, g in enumerate(groups)))
    finally:
        batcher.stop()


def test_concurrent_requests_share_one_model_call(classifier: EmotionClassifier) -> None:
    faces = np.stack(fer_faces("happy", 4) + fer_faces("fear", 5))
    groups = [faces[:3], faces[3:4], faces[4:9]]
    metrics = Metrics()
    batcher = MicroBatcher(classifier, max_batch_size=32, max_wait_s=0.2, metrics=metrics)
    results = asyncio.run(classify_concurrently(batcher, groups))
    assert observed(metrics, "emotion_batch_size", "count") == 1
    assert observed(metrics, "emotion_batch_size", "sum") == 9
    for group, probs in zip(groups, results):
        np.testing.assert_allclose(probs, classifier(group), atol=1e-5)  # each request gets its own rows
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_batches_respect_the_size_limit_without_splitting_requests(classifier: EmotionClassifier) -> None:
    faces = np.stack(fer_faces("sad", 12))
    groups = [faces[i : i + 3] for i in range(0, 12, 3)]
    metrics = Metrics()
    batcher = MicroBatcher(classifier, max_batch_size=6, max_wait_s=0.2, metrics=metrics)
    asyncio.run(classify_concurrently(batcher, groups))
    assert observed(metrics, "emotion_batch_size", "count") == 2
    assert metrics.registry.get_sample_value("emotion_batch_queue_depth", {"model": "emotion"}) == 0


def test_a_lone_request_does_not_wait_for_company(classifier: EmotionClassifier) -> None:
    metrics = Metrics()
    batcher = MicroBatcher(classifier, max_batch_size=32, max_wait_s=2.0, metrics=metrics)
    started = time.perf_counter()
    (probs,) = asyncio.run(classify_concurrently(batcher, [np.stack(fer_faces("happy", 2))]))
    assert time.perf_counter() - started < 1.0  # well under the 2 s batching wait
    assert probs.shape == (2, 7)
    assert batcher.expected == 0


def test_model_errors_reach_every_waiting_request(classifier: EmotionClassifier) -> None:
    metrics = Metrics()
    batcher = MicroBatcher(classifier, max_batch_size=8, max_wait_s=0.05, metrics=metrics)
    crops = np.zeros((2, 50, 50), np.uint8)  # the wrong size: onnxruntime itself refuses the call

    async def run() -> list:
        batcher.start()
        try:
            return await asyncio.gather(batcher.classify(crops), batcher.classify(crops), return_exceptions=True)
        finally:
            batcher.stop()

    results = asyncio.run(run())
    assert all(isinstance(r, Exception) for r in results)
    assert observed(metrics, "emotion_inference_errors", "total") >= 1  # one per failed model call
