from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.api.security import key_is_valid
from service.config import Settings
from tests.helpers.faces import jpeg
from training.scenes import place_faces

IMAGE = [("files", ("a.jpg", jpeg(place_faces([], 120, 160, 50).image), "image/jpeg"))]


def test_key_comparison() -> None:
    assert key_is_valid("k2", ["k1", "k2"])
    assert not key_is_valid("k3", ["k1", "k2"])
    assert not key_is_valid(None, ["k1"])


def test_keys_from_variable_and_file(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("file-key\n\n")
    keyed = settings.model_copy(update={"api_keys": SecretStr(" env-key , "), "api_keys_file": key_file})
    assert keyed.load_api_keys() == ["env-key", "file-key"]
    with TestClient(create_app(keyed)) as client:
        missing = client.post("/v1/predict", files=IMAGE)
        wrong = client.post("/v1/predict", files=IMAGE, headers={"X-API-Key": "nope"})
        for response in (missing, wrong):
            assert response.status_code == 401 and response.headers["www-authenticate"] == "ApiKey"
        assert missing.json()["error"]["message"] == wrong.json()["error"]["message"]  # nothing leaks
        for key in ("env-key", "file-key"):
            assert client.post("/v1/predict", files=IMAGE, headers={"X-API-Key": key}).status_code == 200
        assert client.post("/predict", files=IMAGE).status_code == 401  # the alias too
        assert client.get("/v1/models").status_code == 401
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(open_path).status_code == 200


def test_metrics_can_require_a_key(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr("k"), "metrics_require_api_key": True})
    with TestClient(create_app(keyed)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": "k"}).status_code == 200


def test_cors_is_off_by_default_and_configurable(settings: Settings, client: TestClient) -> None:
    preflight = {"Origin": "https://crm.example.com", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=preflight).headers
    allowed = settings.model_copy(update={"cors_origins": ["https://crm.example.com"]})
    with TestClient(create_app(allowed)) as cors_client:
        response = cors_client.options("/v1/predict", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://crm.example.com"
        other = cors_client.options("/v1/predict", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
