"""The OpenAPI document as the service behaves, not only as its routes declare: every refusal in the
one error shape (FastAPI would describe its own 422 body, which the service never sends), 401 and 429
wherever keys and their quotas apply, and the API key required only when the service has keys (with
keys off, an operation's security is optional, so a generated client never demands a key)."""

from __future__ import annotations

from fastapi import FastAPI

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def error_response(description: str) -> dict:
    return {"description": description, "content": ERROR}


def describe_behaviour(app: FastAPI, keys_on: bool) -> None:
    """Make `app.openapi()` build the default document once, then correct it as above."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            corrected(build(), keys_on)
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's documented way to customise the document


def corrected(schema: dict, keys_on: bool) -> dict:
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = error_response("A malformed request, an option out of range or not taken here.")
            if "security" not in operation:
                continue
            if not keys_on:
                operation["security"] = [{}, *operation["security"]]  # optional: no key needed
                continue
            responses.setdefault("401", error_response("X-API-Key is missing or wrong."))
            if path.startswith("/v1/"):
                responses.setdefault("429", error_response("Past this key's request rate or a quota; see Retry-After."))
    for name in VALIDATION_SCHEMAS:
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema
