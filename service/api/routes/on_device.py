"""What a browser needs to analyse faces on the device: onnxruntime-web (open source, served to anyone,
cached for good under its version) and the graphs the service itself runs (to key holders), each
described with its sha256, which the page checks before it opens the graph."""

from __future__ import annotations

import asyncio
import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from service.api.deps import ReadyRuntimeDep
from service.api.errors import ApiError
from service.api.security import require_api_key
from service.inference.browser_runtime import (
    RUNTIME_NAME,
    RUNTIME_VERSION,
    read_runtime_file,
    runtime_folder,
    stored_name,
)
from service.inference.errors import UnknownModel
from service.inference.model_store import StoredModel, read_graph
from service.runtime import Runtime

runtime_router = APIRouter(include_in_schema=False)
router = APIRouter(tags=["models"], dependencies=[Depends(require_api_key)])
FOREVER = "public, max-age=31536000, immutable"  # every path names its version
RUNTIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript"}
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


class DetectorSettings(BaseModel):
    max_side: int
    score_threshold: float
    nms_threshold: float
    min_face_size: int


class BrowserGraph(BaseModel):
    name: str
    version: str
    sha256: str = Field(description="Of the uncompressed graph the `graph` URL answers.")
    graph: str
    metadata: dict
    detector: DetectorSettings | None = Field(None, description="The service's own detection settings (detector only).")


@runtime_router.get(f"/runtime/{RUNTIME_NAME}/{RUNTIME_VERSION}/{{name}}")
async def runtime_file(name: str, request: Request) -> Response:
    """One of the runtime's files, as the model store holds them after `make prepare`."""
    folder = runtime_folder(request.app.state.settings.model_store)
    if name not in RUNTIME_FILES:
        raise ApiError(404, "not_found", "no such runtime file")
    data = await asyncio.to_thread(read_runtime_file, folder, name)
    # A worker started from a cross-origin isolated page must itself declare that it embeds nothing foreign.
    headers = {
        "Cache-Control": FOREVER,
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
    }
    if stored_name(name) != name:
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=RUNTIME_TYPES[Path(name).suffix], headers=headers)


def served_graph(runtime: Runtime, name: str) -> StoredModel:
    """A graph this service runs: the detector, or one of its emotion models (404: not served here)."""
    if name == runtime.detector_model.name:
        return runtime.detector_model
    try:
        return runtime.emotion(name).stored
    except UnknownModel as error:
        raise ApiError(404, "unknown_model", error.message) from None


@lru_cache(maxsize=8)
def graph_bytes(path: Path) -> bytes:
    return read_graph(path)


def describe(runtime: Runtime, stored: StoredModel, graph_url: str) -> BrowserGraph:
    data = graph_bytes(stored.onnx_path)
    detector = None
    if stored is runtime.detector_model:
        s = runtime.settings
        detector = DetectorSettings(
            max_side=s.detect_max_side,
            score_threshold=s.detect_score_threshold,
            nms_threshold=s.detect_nms_threshold,
            min_face_size=s.min_face_size,
        )
    return BrowserGraph(
        name=stored.name,
        version=stored.version,
        sha256=hashlib.sha256(data).hexdigest(),
        graph=graph_url,
        metadata=stored.metadata,
        detector=detector,
    )


@router.get("/models/{name}/browser", response_model=BrowserGraph)
async def browser_graph(name: str, runtime: ReadyRuntimeDep) -> BrowserGraph:
    """The graph a page runs on the device for this model, as the service runs it."""
    stored = served_graph(runtime, name)
    return await asyncio.to_thread(describe, runtime, stored, f"/v1/models/{name}/{stored.version}/graph.onnx")


@router.get("/models/{name}/{version}/graph.onnx", response_class=Response)
async def graph_file(name: str, version: str, runtime: ReadyRuntimeDep) -> Response:
    return await graph_response(served_graph(runtime, name), version)


async def graph_response(stored: StoredModel, version: str, headers: dict[str, str] | None = None) -> Response:
    """The graph's bytes if it is served at this version (404 otherwise: the page is out of date)."""
    if stored.version != version:
        raise ApiError(404, "not_found", f"{stored.name} is served at version {stored.version}")
    data = await asyncio.to_thread(graph_bytes, stored.onnx_path)
    headers = {"Cache-Control": "private, max-age=86400", **(headers or {})}
    return Response(data, media_type="application/octet-stream", headers=headers)
