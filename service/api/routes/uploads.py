"""What predict and annotate share: read the uploads, admit the request, analyse within the timeout."""

from __future__ import annotations

from fastapi import File, UploadFile

from service.answers import UseRecorder, analyse_photos
from service.api.errors import ApiError, timed_out
from service.inference.pipeline import ImageFaces
from service.runtime import Runtime, ServedModel
from service.schemas import ErrorResponse

FILES = File(description="Images: JPEG, PNG, WebP, BMP, TIFF or GIF (first frame).")

ERRORS = {
    400: {"model": ErrorResponse, "description": "An upload cannot be decoded, or the body is malformed."},
    401: {"model": ErrorResponse, "description": "API keys are configured and X-API-Key is missing or wrong."},
    413: {"model": ErrorResponse, "description": "A file, the request or an image's pixel count is too large."},
    415: {"model": ErrorResponse, "description": "An upload is not an image."},
    422: {"model": ErrorResponse, "description": "No files, too many files, an unknown model, or a malformed request."},
    500: {"model": ErrorResponse, "description": "The model failed; quote the request id."},
    503: {"model": ErrorResponse, "description": "Not ready, or at capacity; see Retry-After."},
    504: {"model": ErrorResponse, "description": "Not finished within the request timeout."},
}


async def analyse_uploads(
    runtime: Runtime,
    emotion: ServedModel,
    files: list[UploadFile],
    limit: int,
    record: UseRecorder,
    describe: bool = False,
) -> list[ImageFaces]:
    if len(files) > limit:
        raise ApiError(422, "too_many_files", f"{len(files)} files sent; at most {limit} per request")
    try:
        with runtime.admission.slot():
            uploads = [await upload.read() for upload in files]
            return await analyse_photos(runtime, emotion, uploads, record, describe)
    except TimeoutError:
        raise timed_out(runtime.settings.request_timeout_s) from None
