"""Requests generated from the app's own OpenAPI schema: whatever the input, never a 5xx."""

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings


def test_no_server_errors_on_any_operation(client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)  # the started app, models loaded
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/models", "/healthz", "/readyz"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def no_5xx(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"

        no_5xx()
