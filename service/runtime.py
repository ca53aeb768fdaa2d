"""Everything the routes need at run time, built once per process at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from service.config import Settings
from service.inference.batcher import MicroBatcher
from service.inference.classifier import EmotionClassifier
from service.inference.errors import UnknownModel
from service.inference.loading import load_detector, load_face_mesh
from service.inference.model_store import ModelStoreError, StoredModel, resolve
from service.inference.pipeline import Pipeline
from service.ops.admission import Admission
from service.ops.metrics import Metrics
from service.ops.streams import StreamRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One emotion model with its own micro-batcher, so a fast model's calls never wait behind a slow one's."""

    stored: StoredModel
    classifier: EmotionClassifier
    batcher: MicroBatcher

    @property
    def name(self) -> str:
        return self.stored.name


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    detector_model: StoredModel
    emotion_models: dict[str, ServedModel]
    default_model: str
    pipeline: Pipeline
    admission: Admission
    streams: StreamRegistry
    ready: bool = False  # what /readyz reports: loaded, warmed, and not shutting down
    serving: bool = False  # whether requests are taken: still true while draining
    draining: bool = False

    def emotion(self, name: str | None = None) -> ServedModel:
        """The model a request asked for by name, or the default; an unknown name raises UnknownModel."""
        served = self.emotion_models.get(name or self.default_model)
        if served is None:
            raise UnknownModel(name, list(self.emotion_models))
        return served

    def models(self, emotion: ServedModel | None = None, described: bool = False) -> dict[str, StoredModel]:
        """The models behind an answer: the detector and the emotion model used (default: the default one),
        and the face mesh's when the answer has descriptors."""
        models = {"detector": self.detector_model, "emotion": (emotion or self.emotion()).stored}
        mesh = self.pipeline.face_mesh
        return {**models, **mesh.stored} if described and mesh is not None else models

    def loaded(self) -> list[tuple[str, StoredModel]]:
        """Every model this process holds, by role: the detector, each emotion model, the face mesh's graphs."""
        emotion = [("emotion", served.stored) for served in self.emotion_models.values()]
        mesh = self.pipeline.face_mesh
        return [("detector", self.detector_model), *emotion, *(mesh.stored.items() if mesh is not None else ())]

    def can_classify(self) -> bool:
        """Whether every model's micro-batcher is running (a stopped one is restarted by the next request)."""
        return all(served.batcher.alive for served in self.emotion_models.values())

    def set_ready(self, ready: bool) -> None:
        self.ready = self.serving = ready
        self.metrics.ready.set(int(ready))

    def start_draining(self) -> None:
        """Out of the balancer's rotation, while still serving whatever it sends meanwhile."""
        self.draining = True
        self.ready = False
        self.metrics.ready.set(0)


def load_emotion_models(settings: Settings, metrics: Metrics) -> dict[str, ServedModel]:
    served = {}
    for name, version in settings.emotion_model_versions().items():
        stored = resolve(settings.model_store, name, version)
        classifier = EmotionClassifier(stored, settings.intra_op_threads)
        batcher = MicroBatcher(classifier, settings.max_batch_size, settings.max_batch_wait_ms / 1000, metrics, name)
        served[name] = ServedModel(stored, classifier, batcher)
    default = served[settings.default_emotion_model].classifier
    for model in served.values():
        # Faces are aligned once per image, for every model: they must all want the same crops.
        same = model.classifier.size == default.size and np.allclose(model.classifier.template, default.template)
        if not same or model.classifier.classes != default.classes:
            raise ModelStoreError(f"{model.name} expects other crops or classes than {settings.default_emotion_model}")
    return served


def load_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    """Load and verify every model; raises ModelStoreError when the store is not prepared."""
    detector_model, detector = load_detector(settings)
    face_mesh = load_face_mesh(settings)
    emotion_models = load_emotion_models(settings, metrics)
    default = emotion_models[settings.default_emotion_model].classifier
    pipeline = Pipeline(
        detector,
        default,
        metrics,
        settings.max_file_bytes,
        settings.max_image_pixels,
        settings.max_request_pixels,
        (settings.detect_region_face_px, settings.detect_region_margin),
        face_mesh,
    )
    admission = Admission(settings.max_concurrent_requests, metrics)
    streams = StreamRegistry(settings.stream_max_streams)
    runtime = Runtime(
        settings, metrics, detector_model, emotion_models, settings.default_emotion_model, pipeline, admission, streams
    )
    for role, model in runtime.loaded():
        metrics.model_info.labels(role, model.name, model.version, model.sha256).set(1)
        log.info("loaded %s model %s version %s sha256 %s", role, model.name, model.version, model.sha256)
    return runtime


def warm_up(runtime: Runtime) -> None:
    """Run every model once at its usual shapes so the first client does not pay for set-up."""
    side = runtime.settings.detect_max_side
    blank = np.full((side * 3 // 4, side, 3), 127, np.uint8)
    runtime.pipeline.detector.detect(blank)
    if runtime.pipeline.face_mesh is not None:  # the descriptors' graphs, on a face-sized box of the blank
        runtime.pipeline.face_mesh.describe(
            blank, np.array([100, 100, 228, 260.0]), np.array([[140, 160], [190, 160.0]])
        )
    for served in runtime.emotion_models.values():
        classifier = served.classifier
        for batch in (1, runtime.settings.max_batch_size):
            classifier(np.zeros((batch, classifier.size, classifier.size), np.uint8))
