"""POST /v1/predict (also served at /predict): every face in every uploaded image, with emotions."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from service.deps import ReadyRuntimeDep
from service.detector import Detection
from service.errors import ApiError
from service.pipeline import AnalysedImage
from service.schemas import (
    Box,
    EmotionScores,
    ErrorResponse,
    Face,
    ImageResult,
    Landmarks,
    ModelRef,
    Point,
    PredictResponse,
)

router = APIRouter(tags=["predict"])

ERRORS = {
    400: {"model": ErrorResponse, "description": "An upload cannot be decoded."},
    401: {"model": ErrorResponse, "description": "API keys are configured and X-API-Key is missing or wrong."},
    413: {"model": ErrorResponse, "description": "A file, the request or an image's pixel count is too large."},
    415: {"model": ErrorResponse, "description": "An upload is not an image."},
    422: {"model": ErrorResponse, "description": "No files, too many files, or a malformed request."},
    500: {"model": ErrorResponse, "description": "The model failed; quote the request id."},
    503: {"model": ErrorResponse, "description": "Not ready, or at capacity; see Retry-After."},
    504: {"model": ErrorResponse, "description": "Not finished within the request timeout."},
}

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def face_result(detection: Detection, probs: list[float], classes: tuple[str, ...]) -> Face:
    x1, y1, x2, y2 = (round(float(v), 1) for v in detection.box)
    scores = dict(zip(classes, (round(p, 6) for p in probs)))
    return Face(
        box=Box(x=x1, y=y1, width=round(x2 - x1, 1), height=round(y2 - y1, 1)),
        landmarks=Landmarks(
            **{
                n: Point(x=round(float(x), 1), y=round(float(y), 1))
                for n, (x, y) in zip(LANDMARK_NAMES, detection.landmarks)
            }
        ),
        detection_score=round(detection.score, 4),
        emotions=EmotionScores(**scores),
        dominant_emotion=classes[max(range(len(probs)), key=probs.__getitem__)],
    )


def image_result(filename: str | None, analysed: AnalysedImage, classes: tuple[str, ...]) -> ImageResult:
    faces = [face_result(d, p, classes) for d, p in zip(analysed.detections, analysed.probabilities.tolist())]
    return ImageResult(filename=filename, width=analysed.width, height=analysed.height, faces=faces)


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(
    request: Request,
    runtime: ReadyRuntimeDep,
    files: Annotated[list[UploadFile], File(description="One or more images (JPEG, PNG, WebP, BMP, TIFF, GIF).")],
) -> PredictResponse:
    """Detect every face in each image and return its distribution over the seven emotions."""
    limit = runtime.settings.max_files
    if len(files) > limit:
        raise ApiError(422, "too_many_files", f"{len(files)} files sent; at most {limit} per request")
    with runtime.admission.slot(), runtime.batcher.reserve() as classify:
        uploads = [await upload.read() for upload in files]
        try:
            analysed = await asyncio.wait_for(
                runtime.pipeline.analyse_many(uploads, classify), runtime.settings.request_timeout_s
            )
        except TimeoutError:
            raise ApiError(504, "timeout", f"not finished within {runtime.settings.request_timeout_s} s") from None
    classes = runtime.pipeline.classifier.classes
    return PredictResponse(
        request_id=request.state.request_id,
        models={role: ModelRef(name=m.name, version=m.version) for role, m in runtime.models().items()},
        images=[image_result(f.filename, a, classes) for f, a in zip(files, analysed)],
    )
