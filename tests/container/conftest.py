"""The images, built once per run from the real Dockerfile (`make test-container`)."""

from __future__ import annotations

import pytest

from tests.helpers.podman import Podman

RUNTIME_IMAGE = "localhost/emotion-service:ci"
BATCH_IMAGE = "localhost/emotion-service:ci-batch"


@pytest.fixture(scope="session")
def podman() -> Podman:
    return Podman.set_up()


@pytest.fixture(scope="session")
def runtime_image(podman: Podman) -> str:
    podman.build("runtime", RUNTIME_IMAGE)
    return RUNTIME_IMAGE


@pytest.fixture(scope="session")
def batch_image(podman: Podman) -> str:
    podman.build("batch", BATCH_IMAGE)
    return BATCH_IMAGE
