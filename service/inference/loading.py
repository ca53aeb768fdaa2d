"""Loading the face detector the settings name (shared by the service and the batch job's workers), and
the face mesh behind the descriptors."""

from __future__ import annotations

from service.config import Settings
from service.inference.detector import RetinaFaceDetector
from service.inference.face_mesh import FaceMesh
from service.inference.model_store import StoredModel, resolve

FACE_LANDMARKS, FACE_BLENDSHAPES = "face-landmarks", "face-blendshapes"


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


def load_face_mesh(settings: Settings, threads: int | None = None) -> FaceMesh:
    """The face mesh and blendshape graphs (the descriptors), verified, from the settings' model store."""
    landmarks = resolve(settings.model_store, FACE_LANDMARKS)
    blendshapes = resolve(settings.model_store, FACE_BLENDSHAPES)
    return FaceMesh(landmarks, blendshapes, settings.intra_op_threads if threads is None else threads)
