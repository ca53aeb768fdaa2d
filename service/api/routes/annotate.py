"""POST /v1/annotate: the uploaded photo with every face boxed, labelled and its landmarks marked."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, UploadFile
from fastapi.responses import Response

from service.api.deps import EmotionModelDep, ReadyRuntimeDep, UseDep
from service.api.routes.uploads import ERRORS, FILES, analyse_uploads
from service.inference.annotate import draw_faces, encode

router = APIRouter(tags=["predict"])

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


@router.post(
    "/annotate",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "The annotated image."},
        **ERRORS,
    },
)
async def annotate(
    runtime: ReadyRuntimeDep,
    emotion: EmotionModelDep,
    record: UseDep,
    files: Annotated[list[UploadFile], FILES],
    format: Annotated[Literal["jpeg", "png"], Query(description="Encoding of the returned image.")] = "jpeg",
) -> Response:
    """Analyse one image, as /v1/predict does, and return it annotated."""
    (analysed,) = await analyse_uploads(runtime, emotion, files, 1, record)
    classes = emotion.classifier.classes
    drawn = await asyncio.to_thread(lambda: encode(draw_faces(analysed.image, analysed.faces, classes), format))
    return Response(drawn, media_type=MEDIA_TYPES[format])
