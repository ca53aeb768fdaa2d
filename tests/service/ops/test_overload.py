"""Overload and failure paths: bounded admission, request timeout, model failure."""

import asyncio

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.errors import as_api_error
from service.config import Settings
from service.inference.errors import InferenceFailed
from service.ops.admission import Admission, Overloaded
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces


def scene_upload(faces: int = 1) -> list[tuple]:
    image = place_faces(fer_faces("happy", faces), 300, 600, 140, seed=20).image
    return [("files", ("scene.jpg", jpeg(image), "image/jpeg"))]


def test_admission_refuses_past_its_limit() -> None:
    admission = Admission(limit=2, metrics=Metrics())
    with admission.slot(), admission.slot():
        with pytest.raises(Overloaded) as caught, admission.slot():
            pass
        answer = as_api_error(caught.value)
        assert answer.status == 503 and answer.headers == {"Retry-After": "1"}
    with admission.slot():  # slots are given back
        assert admission.active == 1


def test_full_service_answers_503_at_once_then_recovers(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_concurrent_requests": 1}))) as client:
        runtime = client.app.state.runtime
        with runtime.admission.slot():  # one request already in flight
            busy = client.post("/v1/predict", files=scene_upload())
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "overloaded"
        assert client.post("/v1/predict", files=scene_upload()).status_code == 200


def test_slow_request_gets_504(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"request_timeout_s": 0.001}))) as client:
        response = client.post("/v1/predict", files=scene_upload(4))
        assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
        assert client.get("/healthz").status_code == 200


def test_model_failure_is_a_500_with_request_id(settings: Settings) -> None:
    runtime = load_runtime(settings, Metrics())
    classifier = runtime.pipeline.classifier

    async def misshapen(crops: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(classifier, crops[:, :40, :40])  # onnxruntime refuses 40x40

    with pytest.raises(InferenceFailed) as caught:
        asyncio.run(runtime.pipeline.analyse_many([scene_upload()[0][1][1]], misshapen))
    answer = as_api_error(caught.value)
    assert (answer.status, answer.code) == (500, "inference_failed")
