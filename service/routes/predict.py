"""POST /v1/predict (also served at /predict): every face in every uploaded image, with emotions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, UploadFile

from service.deps import ReadyRuntimeDep
from service.detector import Detection
from service.pipeline import AnalysedImage
from service.routes.uploads import ERRORS, FILES, analyse_uploads
from service.schemas import Box, EmotionScores, Face, ImageResult, Landmarks, ModelRef, Point, PredictResponse

router = APIRouter(tags=["predict"])

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def face_result(detection: Detection, probs: list[float], classes: tuple[str, ...]) -> Face:
    x1, y1, x2, y2 = (round(float(v), 1) for v in detection.box)
    scores = dict(zip(classes, (round(p, 6) for p in probs)))
    points = {
        n: Point(x=round(float(x), 1), y=round(float(y), 1)) for n, (x, y) in zip(LANDMARK_NAMES, detection.landmarks)
    }
    return Face(
        box=Box(x=x1, y=y1, width=round(x2 - x1, 1), height=round(y2 - y1, 1)),
        landmarks=Landmarks(**points),
        detection_score=round(detection.score, 4),
        emotions=EmotionScores(**scores),
        dominant_emotion=classes[max(range(len(probs)), key=probs.__getitem__)],
    )


def image_result(filename: str | None, analysed: AnalysedImage, classes: tuple[str, ...]) -> ImageResult:
    faces = [face_result(d, p, classes) for d, p in zip(analysed.detections, analysed.probabilities.tolist())]
    return ImageResult(filename=filename, width=analysed.width, height=analysed.height, faces=faces)


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(
    request: Request, runtime: ReadyRuntimeDep, files: Annotated[list[UploadFile], FILES]
) -> PredictResponse:
    """Detect every face in each image (1 to 16 per request) and return its distribution over the seven emotions."""
    analysed = await analyse_uploads(runtime, files, runtime.settings.max_files)
    classes = runtime.pipeline.classifier.classes
    return PredictResponse(
        request_id=request.state.request_id,
        models={role: ModelRef(name=m.name, version=m.version) for role, m in runtime.models().items()},
        images=[image_result(f.filename, a, classes) for f, a in zip(files, analysed)],
    )
