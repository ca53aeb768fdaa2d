"""POST /v1/predict (also served at /predict): every face in every uploaded image, with emotions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, UploadFile

from service.deps import ReadyRuntimeDep
from service.results import image_result
from service.routes.uploads import ERRORS, FILES, analyse_uploads
from service.schemas import ModelRef, PredictResponse

router = APIRouter(tags=["predict"])


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
