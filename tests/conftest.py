"""Shared fixtures: the settings and the real HTTP app with its models. Helpers live in tests.helpers."""

from __future__ import annotations

import os

# Hermetic, before the settings class is imported: the developer's EMOTION_* variables and `.env` reach
# neither the tests nor the services they start (which inherit this environment); each test states the
# settings it needs.
for name in [name for name in os.environ if name.startswith("EMOTION_") and name != "EMOTION_CONTAINER_TESTS"]:
    del os.environ[name]
os.environ["EMOTION_ENV_FILE"] = ""

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from service.api.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402

# The container tests build and run the real images with podman: `make test-container` runs them.
collect_ignore = [] if os.environ.get("EMOTION_CONTAINER_TESTS") else ["container"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app with its lifespan (models loaded and warmed), shared across API tests."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def full_detection_client(settings: Settings) -> Iterator[TestClient]:
    """The app detecting over every frame of clips and streams (EMOTION_DETECTION=full), whose raw
    per-frame answers flicker more than those of regions around tracked faces: what smoothing is for."""
    with TestClient(create_app(settings.model_copy(update={"detection": "full"}))) as test_client:
        yield test_client
