"""Requests generated from the app's own OpenAPI schema: whatever the input, never a 5xx."""

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples

from service.api.app import create_app
from service.config import Settings


def test_no_server_errors_on_any_operation(settings: Settings) -> None:
    app = create_app(settings)  # its own app: the schema runner drives the app's lifespan itself
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/v1/predict", "/v1/annotate", "/v1/models", "/readyz"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @examples(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
            def no_5xx(case: schemathesis.Case) -> None:
                response = case.call()
                assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"

            no_5xx()
