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


def test_limits_the_service_enforces_are_in_the_schema(settings: Settings) -> None:
    document = create_app(settings).openapi()
    served = list(settings.emotion_model_versions())
    predict = document["paths"]["/v1/predict"]["post"]
    assert next(p for p in predict["parameters"] if p["name"] == "model")["schema"]["enum"] == served
    forms = {name: body for name, body in document["components"]["schemas"].items() if name.startswith("Body_")}
    assert forms and all(body["additionalProperties"] is False for body in forms.values())
    files = forms["Body_predict_v1_predict_post"]["properties"]["files"]
    assert (files["minItems"], files["maxItems"], files["items"]["minLength"]) == (1, settings.max_files, 1)
    assert forms["Body_submit_v1_jobs_post"]["properties"]["model"] == {
        **forms["Body_submit_v1_jobs_post"]["properties"]["model"],
        "type": "string",
        "enum": served,
    }
    assert document["components"]["schemas"]["LinkCreate"]["additionalProperties"] is False
    for path, ops in document["paths"].items():
        for op in ops.values():
            assert "{" not in path or "404" in op["responses"], path
            assert "requestBody" not in op or {"400", "413"} <= set(op["responses"]), path
