import numpy as np
import pytest

from service.classifier import EmotionClassifier
from service.config import PROJECT_ROOT
from service.model_store import StoredModel, available_versions, resolve
from tests.conftest import DATA_DIR
from training.calibrate import calibration_figures
from training.data import load_split

STORE = PROJECT_ROOT / "model_store"
STORED = [(name, version) for name in ("emotion", "emotion-fast") for version in available_versions(STORE, name)]


@pytest.fixture(scope="module", params=STORED, ids=[f"{n}-{v}" for n, v in STORED])
def evaluated(request: pytest.FixtureRequest) -> tuple[StoredModel, np.ndarray, np.ndarray]:
    """Each stored model's answers on all of PublicTest through the service's classifier, computed once."""
    model = resolve(STORE, *request.param)
    test = load_split(DATA_DIR, "test")
    classifier = EmotionClassifier(model)
    faces = test.images.numpy()
    probs = np.concatenate([classifier(faces[i : i + 256]) for i in range(0, len(faces), 256)])
    return model, probs, test.labels.numpy()


def test_served_model_reproduces_its_recorded_public_test_accuracy(evaluated: tuple) -> None:
    """The figures in the metadata (and so in /v1/models and the docs) are what the service's own
    classifier gets on all of PublicTest."""
    model, probs, labels = evaluated
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    accuracy = (probs.argmax(1) == labels).mean()
    assert accuracy == pytest.approx(model.metadata["metrics"]["accuracy"], abs=5e-4)


def test_calibrated_models_reproduce_their_recorded_calibration(evaluated: tuple) -> None:
    model, probs, labels = evaluated
    if "calibration" not in model.metadata:
        pytest.skip(f"{model.name}/{model.version} is not calibrated (kept for rollback)")
    recorded = model.metadata["calibration"]
    measured = calibration_figures(probs, labels)
    for key, value in recorded["shipped_graph_on_publictest"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key
    # The honest (cross-fitted) figures: the shares a client averages are right, the likelihood better,
    # and accuracy within 0.3 point of the uncalibrated graph.
    after, before = recorded["cross_fitted"]["after"], recorded["cross_fitted"]["before"]
    assert after["class_share_error"] <= 0.02 and after["nll"] < before["nll"]
    assert after["accuracy"] >= before["accuracy"] - 0.003
