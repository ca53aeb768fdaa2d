"""POST /v1/predict (also served at /predict): every face in every uploaded image, with emotions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile

from service.answers import photo_answer
from service.api.deps import EmotionModelDep, ReadyRuntimeDep, UseDep
from service.api.routes.uploads import ERRORS, FILES, analyse_uploads
from service.options import DESCRIPTORS_HELP
from service.schemas import PredictResponse

router = APIRouter(tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(
    request: Request,
    runtime: ReadyRuntimeDep,
    emotion: EmotionModelDep,
    record: UseDep,
    files: Annotated[list[UploadFile], FILES],
    descriptors: Annotated[bool, Query(description=DESCRIPTORS_HELP)] = False,
) -> PredictResponse:
    """Detect every face in each image (1 to 16 per request) and return its distribution over the seven emotions."""
    analysed = await analyse_uploads(runtime, emotion, files, runtime.settings.max_files, record, descriptors)
    names = [f.filename for f in files]
    return photo_answer(runtime, emotion, names, analysed, request.state.request_id, descriptors)
