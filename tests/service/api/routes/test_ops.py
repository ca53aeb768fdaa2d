from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.inference.model_store import graph_sha256, resolve


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    assert "emotion_ready 1.0" in client.get("/metrics").text


def test_not_ready_before_models_load(settings: Settings) -> None:
    """Without its lifespan the app has no models: alive, but not ready, and predict says 503."""
    client = TestClient(create_app(settings))  # no `with`: start-up never runs
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    predict = client.post("/v1/predict", files=[("files", ("a.jpg", b"\xff\xd8\xff", "image/jpeg"))])
    assert predict.status_code == 503 and predict.json()["error"]["code"] == "not_ready"


def test_models_report_what_is_loaded(client: TestClient, settings: Settings) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [m["role"] for m in models] == ["detector", "emotion", "emotion", "face_landmarks", "face_blendshapes"]
    mesh = {m["role"]: m for m in models if m["role"].startswith("face_")}
    assert all(m["license"].startswith("Apache-2.0") for m in mesh.values())
    assert mesh["face_landmarks"]["sha256"] == resolve(settings.model_store, "face-landmarks").sha256
    emotion = {m["name"]: m for m in models if m["role"] == "emotion"}
    assert set(emotion) == {"emotion", "emotion-fast"}
    assert [name for name, m in emotion.items() if m["default"]] == [settings.default_emotion_model] == ["emotion"]
    info = client.get("/metrics").text
    for name, model in emotion.items():
        stored = resolve(settings.model_store, name)
        assert model["sha256"] == graph_sha256(stored.onnx_path)
        assert model["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        assert 0 < model["metrics"]["accuracy"] <= 1
        assert model["calibration"]["cross_fitted"]["after"]["class_share_error"] <= 0.02
        assert f'emotion_model_info{{name="{name}",role="emotion",sha256="{stored.sha256}"' in info


def test_openapi_documents_the_real_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/predict" in spec["paths"] and "/predict" not in spec["paths"]
    schema = spec["paths"]["/v1/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/PredictResponse")
    assert {"400", "413", "415", "422", "503"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])


def test_unknown_route_is_json(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
