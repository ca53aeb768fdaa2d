"""The analysis pipeline: decode, detect, align (per image, in worker threads), then classify
every face of a request in one model call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

from service.inference.alignment import align_faces
from service.inference.classifier import CropSpec, EmotionClassifier
from service.inference.detector import FaceDetector
from service.inference.errors import ImageRejected, InferenceFailed
from service.inference.face_mesh import FaceMesh
from service.inference.faces import Faces
from service.inference.imaging import claimed_pixels, decode_image
from service.ops.metrics import Metrics

log = logging.getLogger(__name__)

AsyncClassify = Callable[[np.ndarray], Awaitable[np.ndarray]]
StageTimer = Callable[[str], AbstractContextManager]  # times one named stage


@dataclass(frozen=True)
class ImageFaces:
    """A decoded image and its faces: aligned once prepared, with probabilities once classified."""

    image: np.ndarray  # the decoded upright BGR image, for annotation
    faces: Faces

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


def untimed(stage: str) -> AbstractContextManager:
    return nullcontext()


def prepare_faces(image: np.ndarray, detector: FaceDetector, spec: CropSpec, stage: StageTimer = untimed) -> ImageFaces:
    """Detect every face of a decoded image and align each to the crops the emotion model wants: the same
    step for the service and the batch job, so a face scores the same in both."""
    with stage("detect"):
        faces = detector.detect(image)
    return aligned(image, faces, spec, stage)


def aligned(image: np.ndarray, faces: Faces, spec: CropSpec, stage: StageTimer) -> ImageFaces:
    with stage("align"):
        crops = align_faces(image, faces, spec.template, spec.size)
    return ImageFaces(image, faces.with_columns(crops=crops))


class Pipeline:
    def __init__(
        self,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        metrics: Metrics,
        max_file_bytes: int,
        max_image_pixels: int,
        max_request_pixels: int,
        region: tuple[int, float] = (80, 0.6),
        face_mesh: FaceMesh | None = None,
    ) -> None:
        self.region = region  # around expected faces: the face's size in pixels to detect at, the margin
        self.face_mesh = face_mesh  # what the descriptors come from, when asked for
        self.detector = detector
        self.classifier = classifier
        self.metrics = metrics
        self.max_file_bytes = max_file_bytes
        self.max_image_pixels = max_image_pixels
        self.max_request_pixels = max_request_pixels

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.metrics.stage_seconds.labels(name).observe(time.perf_counter() - started)

    def prepare(self, data: bytes, describe: bool = False) -> ImageFaces:
        """Everything before classification, for one upload (with each face's descriptors if asked).
        Blocking: run it in a worker thread."""
        try:
            with self._stage("decode"):
                image = decode_image(data, self.max_file_bytes, self.max_image_pixels)
        except ImageRejected as rejection:
            self.metrics.rejected.labels(rejection.reason).inc()
            raise
        prepared = self.prepare_frame(image, describe=describe)
        self.metrics.faces_per_image.observe(len(prepared.faces))
        self.metrics.images.inc()
        return prepared

    def prepare_frame(
        self, image: np.ndarray, expected: np.ndarray | None = None, describe: bool = False
    ) -> ImageFaces:
        """Detect and align the faces of an already decoded image (a photo, or a frame of a clip or stream):
        over the whole image, or, given the boxes where tracked faces are expected, only around those.
        With `describe`, each face also gets its descriptors (the face mesh)."""
        if expected is None:
            prepared = prepare_faces(image, self.detector, self.classifier.spec, self._stage)
        else:
            with self._stage("detect_region"):
                faces = self.detector.detect_around(image, expected, *self.region)
            prepared = aligned(image, faces, self.classifier.spec, self._stage)
        return self.described(prepared) if describe else prepared

    def described(self, prepared: ImageFaces) -> ImageFaces:
        if self.face_mesh is None or not len(prepared.faces):
            return prepared
        with self._stage("describe"):
            descriptions = self.face_mesh.describe_all(prepared.image, prepared.faces)
        return ImageFaces(prepared.image, prepared.faces.with_columns(descriptions=descriptions))

    def analyse(self, data: bytes, classifier: EmotionClassifier | None = None) -> ImageFaces:
        """One image start to finish in the calling thread, for the command line and benchmarks.

        With the default model unless another is given."""
        classifier = classifier or self.classifier
        prepared = self.prepare(data)
        crops = prepared.faces.crops
        return self._attach(prepared, classifier(crops) if len(crops) else None)

    async def analyse_many(
        self, uploads: list[bytes], classify: AsyncClassify, describe: bool = False
    ) -> list[ImageFaces]:
        """All uploads of a request: images prepared concurrently, all faces classified in one call."""
        self._check_request_pixels(uploads)
        prepared = await asyncio.gather(
            *(asyncio.to_thread(self._prepare_numbered, i, d, describe) for i, d in enumerate(uploads))
        )
        crops = [p.faces.crops for p in prepared if len(p.faces)]
        try:
            probs = await classify(np.concatenate(crops)) if crops else None
        except Exception as error:
            log.exception("emotion model call failed")
            raise InferenceFailed from error
        results, offset = [], 0
        for p in prepared:
            count = len(p.faces)
            results.append(self._attach(p, probs[offset : offset + count] if count else None))
            offset += count
        return results

    def _check_request_pixels(self, uploads: list[bytes]) -> None:
        """Bound what a request decodes in all: each image is within its own limit, but 16 of them need not be."""
        total = sum(claimed_pixels(data) for data in uploads)
        if total > self.max_request_pixels:
            self.metrics.rejected.labels("too_many_pixels").inc()
            message = f"the images together have {total} pixels, over the {self.max_request_pixels} pixel limit"
            raise ImageRejected(413, "too_many_pixels", message)

    def _prepare_numbered(self, index: int, data: bytes, describe: bool) -> ImageFaces:
        try:
            return self.prepare(data, describe)
        except ImageRejected as rejection:
            rejection.message = f"files[{index}]: {rejection.message}"
            raise

    def _attach(self, prepared: ImageFaces, probs: np.ndarray | None) -> ImageFaces:
        if probs is None:
            probs = np.empty((0, len(self.classifier.classes)), np.float32)
        return ImageFaces(prepared.image, prepared.faces.with_columns(probabilities=probs))
