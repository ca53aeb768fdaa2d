"""Shared fixtures: the settings and the real HTTP app with its models. Helpers live in tests.helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app with its lifespan (models loaded and warmed), shared across API tests."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
