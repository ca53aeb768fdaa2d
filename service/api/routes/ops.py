"""Operational endpoints: liveness, readiness, Prometheus metrics and the loaded models.

All `async def`: none blocks, so they answer on the event loop even when the thread pool is busy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import RETRY_AFTER_SECONDS, ReadyRuntimeDep, RuntimeDep
from service.api.parameters import known_parameters
from service.api.security import api_key_header, require_api_key
from service.schemas import Health, ModelInfo, ModelsResponse

router = APIRouter(tags=["operations"])


@router.api_route("/healthz", methods=["GET", "HEAD"], response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers. Restart the pod only when this fails."""
    return Health(status="ok")


@router.api_route("/readyz", methods=["GET", "HEAD"], response_model=Health, responses={503: {"model": Health}})
async def readyz(runtime: RuntimeDep) -> Response:
    """Readiness: models loaded and warmed, every model's batcher running, not shutting down. Route traffic
    only when this is 200."""
    if runtime is not None and runtime.ready and runtime.can_classify():
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "not_ready"}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, presented: Annotated[str | None, Security(api_key_header)]) -> Response:
    if request.app.state.settings.metrics_require_api_key:
        await require_api_key(request, presented)
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/models", response_model=ModelsResponse, dependencies=[Depends(require_api_key), Depends(known_parameters)]
)
async def models(runtime: ReadyRuntimeDep) -> ModelsResponse:
    """The models this process serves, with checksums, measured quality and calibration; `default` marks the
    emotion model of requests that name none. The face mesh's two graphs run when descriptors are asked for."""
    return ModelsResponse(
        models=[
            ModelInfo(
                role=role,
                name=m.name,
                version=m.version,
                default=role == "emotion" and m.name == runtime.default_model,
                sha256=m.sha256,
                task=m.metadata["task"],
                classes=m.metadata.get("classes"),
                metrics=m.metadata.get("metrics"),
                calibration=m.metadata.get("calibration"),
                license=m.metadata["license"],
            )
            for role, m in runtime.loaded()
        ]
    )
