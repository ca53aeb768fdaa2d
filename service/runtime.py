"""Everything the routes need at run time, built once per process at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from service.admission import Admission
from service.batcher import MicroBatcher
from service.classifier import EmotionClassifier
from service.config import Settings
from service.detector import RetinaFaceDetector
from service.live import StreamRegistry
from service.metrics import Metrics
from service.model_store import StoredModel, resolve
from service.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    detector_model: StoredModel
    emotion_model: StoredModel
    pipeline: Pipeline
    batcher: MicroBatcher
    admission: Admission
    streams: StreamRegistry
    ready: bool = False  # what /readyz reports: loaded, warmed, and not shutting down
    serving: bool = False  # whether requests are taken: still true while draining
    draining: bool = False

    def models(self) -> dict[str, StoredModel]:
        return {"detector": self.detector_model, "emotion": self.emotion_model}

    def set_ready(self, ready: bool) -> None:
        self.ready = self.serving = ready
        self.metrics.ready.set(int(ready))

    def start_draining(self) -> None:
        """Out of the balancer's rotation, while still serving whatever it sends meanwhile."""
        self.draining = True
        self.ready = False
        self.metrics.ready.set(0)


def load_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    """Load and verify both models; raises ModelStoreError when the store is not prepared."""
    detector_model = resolve(settings.model_store, settings.detector_model, settings.detector_version)
    emotion_model = resolve(settings.model_store, settings.emotion_model, settings.emotion_version)
    detector = RetinaFaceDetector(
        detector_model,
        max_side=settings.detect_max_side,
        score_threshold=settings.detect_score_threshold,
        nms_threshold=settings.detect_nms_threshold,
        min_face_size=settings.min_face_size,
        backend=settings.detector_backend,
        threads=settings.intra_op_threads,
    )
    classifier = EmotionClassifier(emotion_model, settings.intra_op_threads)
    pipeline = Pipeline(detector, classifier, metrics, settings.max_file_bytes, settings.max_image_pixels)
    batcher = MicroBatcher(classifier, settings.max_batch_size, settings.max_batch_wait_ms / 1000, metrics)
    for role, model in (("detector", detector_model), ("emotion", emotion_model)):
        metrics.model_info.labels(role, model.name, model.version, model.sha256).set(1)
        log.info("loaded %s model %s version %s sha256 %s", role, model.name, model.version, model.sha256)
    admission = Admission(settings.max_concurrent_requests, metrics)
    streams = StreamRegistry(settings.stream_max_streams)
    return Runtime(settings, metrics, detector_model, emotion_model, pipeline, batcher, admission, streams)


def warm_up(runtime: Runtime) -> None:
    """Run both models once at their usual shapes so the first client does not pay for set-up."""
    side = runtime.settings.detect_max_side
    runtime.pipeline.detector.detect(np.full((side * 3 // 4, side, 3), 127, np.uint8))
    classifier = runtime.pipeline.classifier
    for batch in (1, runtime.settings.max_batch_size):
        classifier(np.zeros((batch, classifier.size, classifier.size), np.uint8))
