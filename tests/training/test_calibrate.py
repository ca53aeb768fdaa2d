import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA_DIR
from training.calibrate import (
    apply,
    bake,
    calibrate_model,
    class_share_error,
    cross_fitted,
    expected_calibration_error,
    fit,
)
from training.data import load_split
from training.evaluate import onnx_probabilities


def test_calibration_error_and_class_share_error_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    # Confident and right half the time in the 0.9 bin: a gap of 0.4 on every face.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert class_share_error(probs, labels) == pytest.approx(0.4)  # mean (0.9, 0.1) against (0.5, 0.5)
    perfect = np.eye(2)[labels]
    assert expected_calibration_error(perfect, labels) == 0 and class_share_error(perfect, labels) == 0


def test_fit_recovers_a_known_temperature_and_prior() -> None:
    """Labels drawn from softmax(2 * log p + bias): the fit finds scale 2 and the bias."""
    rng = np.random.default_rng(0)
    log_p = np.log(rng.dirichlet(np.ones(7), size=20_000))
    bias = np.array([0.5, -1.0, 0.0, 0.3, 0.0, -0.2, 0.4])
    truth = apply(log_p, 2.0, bias)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    scale, fitted = fit(log_p, labels)
    assert scale == pytest.approx(2.0, abs=0.1)
    np.testing.assert_allclose(fitted, bias - bias.mean(), atol=0.1)
    honest = cross_fitted(log_p, labels)
    assert expected_calibration_error(honest, labels) < 0.02


def test_the_baked_graph_computes_the_calibrated_probabilities(float16_export: Path, tmp_path: Path) -> None:
    faces = load_split(DATA_DIR, "test").images.numpy()[:200]
    bias = np.linspace(-0.5, 0.5, 7)
    bake(float16_export / "model.onnx", tmp_path / "model.onnx", 1.3, bias)
    before = onnx_probabilities(float16_export / "model.onnx", faces)
    after = onnx_probabilities(tmp_path / "model.onnx", faces)
    np.testing.assert_allclose(after, apply(np.log(np.maximum(before, 1e-7)), 1.3, bias), atol=1e-5)


def test_calibrating_a_model_records_honest_figures(float16_export: Path, small_data: Path, tmp_path: Path) -> None:
    target = tmp_path / "emotion" / "2"
    record = calibrate_model(float16_export, target, small_data, tmp_path / "diagram.png")
    before, after = record["cross_fitted"]["before"], record["cross_fitted"]["after"]
    assert after["class_share_error"] < before["class_share_error"]
    assert after["nll"] < before["nll"]
    assert (tmp_path / "diagram.png").stat().st_size > 10_000
    metadata = json.loads((target / "metadata.json").read_text())
    assert metadata["version"] == "2" and metadata["calibrated_from"] == "emotion/1"
    assert metadata["metrics"]["accuracy"] == record["shipped_graph_on_publictest"]["accuracy"]
