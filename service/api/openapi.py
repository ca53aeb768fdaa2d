"""The OpenAPI document as the service behaves, not only as its routes declare: every refusal in the
one error shape (FastAPI would describe its own 422 body, which the service never sends), each status an
operation can give, the limits the service enforces (the models it serves, files per request, non-empty
uploads, no undeclared fields), and the API key required only when the service has keys (with keys off,
an operation's security is optional, so a generated client never demands a key)."""

from __future__ import annotations

from fastapi import FastAPI

from service.config import Settings

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# What any operation of a kind can answer besides its own responses, and why.
PATH_STATUSES = {"404": "No such resource for this key (or the model is not served here)."}
BODY_STATUSES = {
    "400": "The body could not be read (malformed JSON or multipart, or an empty file).",
    "408": "The body did not arrive in time.",
    "413": "The body or one of its files is larger than the service accepts.",
}
V1_STATUSES = {"503": "Not ready yet, or overloaded; see Retry-After."}


def error_response(description: str) -> dict:
    return {"description": description, "content": ERROR}


def describe_behaviour(app: FastAPI, settings: Settings, keys_on: bool) -> None:
    """Make `app.openapi()` build the default document once, then correct it as above."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            corrected(build(), settings, keys_on)
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's documented way to customise the document


def corrected(schema: dict, settings: Settings, keys_on: bool) -> dict:
    models = list(settings.emotion_model_versions())
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = error_response("A malformed request, an option out of range or not taken here.")
            extra = {
                **(PATH_STATUSES if "{" in path else {}),
                **(BODY_STATUSES if "requestBody" in operation else {}),
                **(V1_STATUSES if path.startswith("/v1/") else {}),
            }
            for status, description in extra.items():
                responses.setdefault(status, error_response(description))
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model" and parameter["in"] == "query":
                    parameter["schema"] = {"type": "string", "enum": models}
            describe_security(operation, responses, path, keys_on)
    components = schema.get("components", {}).get("schemas", {})
    for name in VALIDATION_SCHEMAS:
        components.pop(name, None)
    for name, body in components.items():
        if name.startswith("Body_"):  # a multipart form: its fields are all it takes
            describe_form(body, models, settings.max_files)
    return schema


def describe_security(operation: dict, responses: dict, path: str, keys_on: bool) -> None:
    if "security" not in operation:
        return
    if not keys_on:
        operation["security"] = [{}, *operation["security"]]  # optional: no key needed
        return
    responses.setdefault("401", error_response("X-API-Key is missing or wrong."))
    if path.startswith("/v1/"):
        responses.setdefault("429", error_response("Past this key's request rate or a quota; see Retry-After."))


def describe_form(body: dict, models: list[str], max_files: int) -> None:
    """Undeclared fields are refused (service.api.parameters), a field is sent or left out (a form has no
    null), files are never empty, a request carries at most max_files images, and `model` is one the
    service serves."""
    body["additionalProperties"] = False
    for name, field in body.get("properties", {}).items():
        if branches := [branch for branch in field.pop("anyOf", []) if branch.get("type") != "null"]:
            field.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
        if field.get("contentMediaType"):
            field["minLength"] = 1
        elif field.get("type") == "array" and field.get("items", {}).get("contentMediaType"):
            field["items"]["minLength"] = 1
            field.update(minItems=1, maxItems=max_files)
        elif name == "model":
            field.update(type="string", enum=models)
