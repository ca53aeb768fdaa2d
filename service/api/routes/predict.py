"""POST /v1/predict (also served at /predict): every face in every uploaded image, with emotions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, UploadFile

from service.api.deps import EmotionModelDep, ReadyRuntimeDep
from service.api.routes.uploads import ERRORS, FILES, analyse_uploads
from service.inference.results import image_result, model_refs
from service.schemas import PredictResponse

router = APIRouter(tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(
    request: Request, runtime: ReadyRuntimeDep, emotion: EmotionModelDep, files: Annotated[list[UploadFile], FILES]
) -> PredictResponse:
    """Detect every face in each image (1 to 16 per request) and return its distribution over the seven emotions."""
    analysed = await analyse_uploads(runtime, emotion, files, runtime.settings.max_files)
    classes = emotion.classifier.classes
    return PredictResponse(
        request_id=request.state.request_id,
        models=model_refs(runtime.models(emotion)),
        images=[image_result(f.filename, a, classes) for f, a in zip(files, analysed)],
    )
