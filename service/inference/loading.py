"""Loading the face detector the settings name: shared by the service and the batch job's workers."""

from __future__ import annotations

from service.config import Settings
from service.inference.detector import RetinaFaceDetector
from service.inference.model_store import StoredModel, resolve


def load_detector(settings: Settings, threads: int | None = None) -> tuple[StoredModel, RetinaFaceDetector]:
    """The face detector the settings name, verified, with their sizes and thresholds (threads: the setting's)."""
    detector_model = resolve(settings.model_store, settings.detector_model, settings.detector_version)
    detector = RetinaFaceDetector(
        detector_model,
        max_side=settings.detect_max_side,
        score_threshold=settings.detect_score_threshold,
        nms_threshold=settings.detect_nms_threshold,
        min_face_size=settings.min_face_size,
        backend=settings.detector_backend,
        threads=settings.intra_op_threads if threads is None else threads,
    )
    return detector_model, detector
