import numpy as np
import pytest

from service.config import PROJECT_ROOT, Settings
from service.inference.classifier import EmotionClassifier
from service.inference.model_store import StoredModel, available_versions, resolve
from tests.helpers.data import fer2013_dir
from training.calibrate import apply, calibration_figures
from training.data import load_split

STORE = PROJECT_ROOT / "model_store"
SERVED = list(Settings().emotion_model_versions().items())


@pytest.fixture(scope="module", params=SERVED, ids=[name for name, _ in SERVED])
def evaluated(request: pytest.FixtureRequest) -> tuple[StoredModel, np.ndarray, np.ndarray]:
    """Each served model's answers on all of PublicTest through the service's classifier, computed once."""
    model = resolve(STORE, *request.param)
    test = load_split(fer2013_dir(), "test")
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
    recorded = model.metadata["calibration"]
    measured = calibration_figures(probs, labels)
    for key, value in recorded["shipped_graph_on_publictest"].items():
        assert measured[key] == pytest.approx(value, abs=2e-3), key
    # The honest (cross-fitted) figures: the shares a client averages are right, the likelihood better,
    # and accuracy within 0.3 point of the uncalibrated graph.
    after, before = recorded["cross_fitted"]["after"], recorded["cross_fitted"]["before"]
    assert after["class_share_error"] <= 0.02 and after["nll"] < before["nll"]
    assert after["accuracy"] >= before["accuracy"] - 0.003


def test_the_store_holds_only_served_models_and_their_rollback_bases() -> None:
    served = {f"{m.name}/{m.version}": m for m in (resolve(STORE, *entry) for entry in SERVED)}
    bases = {m.metadata.get("calibrated_from") for m in served.values()}
    for name in ("emotion", "emotion-fast"):
        for version in available_versions(STORE, name):
            assert f"{name}/{version}" in served.keys() | bases, f"{name}/{version} is neither served nor a rollback"


def test_the_rollback_model_is_the_calibrated_models_graph_before_calibration(evaluated: tuple) -> None:
    """The graph a calibrated model was made from, checked on 128 faces, and its recorded PublicTest
    accuracy recomputed from the calibrated model's answers: the calibration (scale > 0, a bias per
    class) is undone exactly up to each face's normalisation, which leaves the argmax unchanged."""
    model, probs, labels = evaluated
    if "calibrated_from" not in model.metadata:
        pytest.skip(f"{model.name} is not made from another stored graph")
    base = resolve(STORE, *model.metadata["calibrated_from"].split("/"))
    constants = model.metadata["calibration"]
    scale, bias = constants["scale"], np.array([constants["bias"][c] for c in model.metadata["classes"]])
    faces = load_split(fer2013_dir(), "test").images.numpy()[:128]
    base_probs = EmotionClassifier(base)(faces)
    np.testing.assert_allclose(apply(np.log(base_probs), scale, bias), probs[:128], atol=1e-4)
    uncalibrated = (np.log(np.maximum(probs, 1e-30)) - bias).argmax(1)
    assert (uncalibrated == labels).mean() == pytest.approx(base.metadata["metrics"]["accuracy"], abs=5e-4)
