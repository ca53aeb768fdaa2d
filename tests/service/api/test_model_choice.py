"""Each request picks its emotion model; each model has its own micro-batcher and metrics."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.helpers.clips import clip_bytes
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces

SCENE = jpeg(place_faces(fer_faces("happy", 1) + fer_faces("surprise", 1), 480, 640, 170, seed=70).image)


@pytest.mark.parametrize("model", ["emotion", "emotion-fast"])
def test_a_photo_is_answered_by_the_model_it_names(client: TestClient, model: str) -> None:
    before = batches(client, model)
    body = client.post("/v1/predict", params={"model": model}, files={"files": ("a.jpg", SCENE)}).json()
    assert body["models"]["emotion"]["name"] == model
    assert sorted(f["dominant_emotion"] for f in body["images"][0]["faces"]) == ["happy", "surprise"]
    assert batches(client, model) == before + 1  # its own micro-batcher made the call


def test_the_models_answer_differently_and_the_default_is_the_accurate_one(client: TestClient) -> None:
    answers = {
        name: client.post("/v1/predict", params=params, files={"files": ("a.jpg", SCENE)}).json()
        for name, params in (("default", {}), ("emotion", {"model": "emotion"}), ("fast", {"model": "emotion-fast"}))
    }
    emotions = {name: answer["images"][0]["faces"][0]["emotions"] for name, answer in answers.items()}
    assert emotions["default"] == emotions["emotion"]
    assert not np.allclose(list(emotions["fast"].values()), list(emotions["emotion"].values()), atol=1e-4)


def test_an_unknown_model_gets_a_422_naming_the_loaded_ones(client: TestClient) -> None:
    for path, files in (("/v1/predict", {"files": ("a.jpg", SCENE)}), ("/v1/video", {"file": ("c", b"x")})):
        response = client.post(path, params={"model": "emotion-huge"}, files=files)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "unknown_model"
        assert "emotion, emotion-fast" in error["message"]


def test_video_and_stream_use_the_model_they_name(client: TestClient) -> None:
    clip = clip_bytes("asl-thanks.mkv")
    body = client.post("/v1/video", params={"model": "emotion-fast", "fps": 2}, files={"file": ("c.mkv", clip)}).json()
    assert body["models"]["emotion"]["name"] == "emotion-fast" and body["summary"]["people"] == 1
    before = batches(client, "emotion-fast")
    with client.websocket_connect("/v1/stream?model=emotion-fast") as ws:
        ws.send_bytes(SCENE)
        assert len(json.loads(ws.receive_text())["faces"]) == 2
    assert batches(client, "emotion-fast") == before + 1
    with client.websocket_connect("/v1/stream?model=emotion-huge") as ws, pytest.raises(Exception) as closed:
        ws.receive_text()
    assert closed.value.code == 1008


def batches(client: TestClient, model: str) -> float:
    prefix = f'emotion_batch_size_count{{model="{model}"}} '
    line = next((line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)), None)
    return float(line.split()[1]) if line else 0.0
