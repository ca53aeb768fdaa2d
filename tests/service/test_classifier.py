import numpy as np
import pytest

from service.classifier import EmotionClassifier
from service.config import PROJECT_ROOT
from service.model_store import available_versions, resolve
from tests.conftest import DATA_DIR
from training.data import load_split

STORE = PROJECT_ROOT / "model_store"


@pytest.mark.parametrize("version", available_versions(STORE, "emotion"))
def test_served_model_reproduces_its_recorded_public_test_accuracy(version: str) -> None:
    """The figures in the metadata (and so in /v1/models and the README) are what the service's own
    classifier gets on all of PublicTest."""
    model = resolve(STORE, "emotion", version)
    test = load_split(DATA_DIR, "test")
    classifier = EmotionClassifier(model)
    faces = test.images.numpy()
    probs = np.concatenate([classifier(faces[i : i + 256]) for i in range(0, len(faces), 256)])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    accuracy = (probs.argmax(1) == test.labels.numpy()).mean()
    assert accuracy == pytest.approx(model.metadata["metrics"]["accuracy"], abs=5e-4)
