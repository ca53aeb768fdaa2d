"""The OpenAPI document says what the service does: its one error shape for every refusal, 401 and 429
where keys and quotas apply, and a key required only when the service has keys."""

from __future__ import annotations

from service.api.app import create_app
from service.config import Settings

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}


def operations(settings: Settings) -> list[tuple[str, dict]]:
    document = create_app(settings).openapi()  # no lifespan: the document needs no models
    return [(path, op) for path, ops in document["paths"].items() for op in ops.values()]


def test_with_keys_every_keyed_operation_documents_401_and_its_quota(settings: Settings) -> None:
    keyed = [
        (path, op)
        for path, op in operations(Settings(**{**settings.model_dump(), "api_keys": "k"}))
        if "security" in op
    ]
    assert len(keyed) >= 30  # every operation but health and readiness
    for path, op in keyed:
        assert op["security"] == [{"APIKeyHeader": []}], path
        assert op["responses"]["401"]["content"]["application/json"]["schema"] == ERROR, path
        assert "429" in op["responses"] or not path.startswith("/v1/"), path
        assert not any(p["in"] == "header" and p["name"].lower() == "x-api-key" for p in op.get("parameters", []))


def test_without_keys_the_key_is_optional_and_422_is_the_error_shape(settings: Settings) -> None:
    for path, op in operations(Settings(**{**settings.model_dump(), "api_keys": ""})):
        if "security" in op:
            assert {} in op["security"], path
        if "422" in op["responses"]:
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == ERROR, path
