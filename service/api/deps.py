"""Route dependencies: the process runtime, a guard that it is ready to serve, the job store, and whose
jobs and studies a request may see.

They are `async def` because they never block: FastAPI runs a plain `def` dependency in its thread
pool, a thread hand-off on every request for nothing.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from starlette.requests import HTTPConnection

from service.answers import UseRecorder
from service.api.errors import ApiError
from service.api.security import api_key_header
from service.jobs.media import MediaStore
from service.jobs.queue import Jobs
from service.runtime import Runtime, ServedModel

RETRY_AFTER_SECONDS = "5"


async def get_runtime(request: Request) -> Runtime | None:
    """None until the lifespan has loaded the models."""
    return getattr(request.app.state, "runtime", None)


async def get_ready_runtime(runtime: Annotated[Runtime | None, Depends(get_runtime)]) -> Runtime:
    if runtime is None or not runtime.serving:
        raise ApiError(
            503,
            "not_ready",
            "the service is starting or shutting down; retry shortly",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return runtime


RuntimeDep = Annotated[Runtime | None, Depends(get_runtime)]
ReadyRuntimeDep = Annotated[Runtime, Depends(get_ready_runtime)]


async def get_emotion_model(
    runtime: ReadyRuntimeDep,
    model: Annotated[
        str | None, Query(description="Emotion model to use, e.g. emotion or emotion-fast; default: the service's.")
    ] = None,
) -> ServedModel:
    return runtime.emotion(model)


EmotionModelDep = Annotated[ServedModel, Depends(get_emotion_model)]


async def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


JobsDep = Annotated[Jobs, Depends(get_jobs)]


async def get_stimuli(request: Request) -> MediaStore:
    """Where studies keep their ads."""
    return request.app.state.stimuli


StimuliDep = Annotated[MediaStore, Depends(get_stimuli)]


def owner_of(connection: HTTPConnection, presented: str | None) -> str:
    """Whose jobs these are: a digest of the API key, or "-" when the service has no keys."""
    if not connection.app.state.api_keys:
        return "-"
    return hashlib.sha256((presented or "").encode(errors="surrogatepass")).hexdigest()[:32]


async def get_owner(request: Request, presented: Annotated[str | None, Depends(api_key_header)]) -> str:
    return owner_of(request, presented)


OwnerDep = Annotated[str, Depends(get_owner)]


async def get_use_recorder(jobs: JobsDep, owner: OwnerDep) -> UseRecorder:
    """What counts a request's work for its key (GET /v1/usage)."""
    return jobs.usage.recorder(owner)


UseDep = Annotated[UseRecorder, Depends(get_use_recorder)]


async def refuse_second_file(request: Request) -> None:
    """One `file` part per request: a second one would otherwise be dropped without a word."""
    form = await request.form()
    if len(form.getlist("file")) > 1:
        raise ApiError(422, "too_many_files", "send exactly one part named file")


SingleFile = Depends(refuse_second_file)
IdempotencyKeyDep = Annotated[
    str | None,
    Header(min_length=1, max_length=256, description="Makes a retried submission return what the first one made."),
]
