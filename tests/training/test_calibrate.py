import json
from pathlib import Path

import numpy as np
import pytest

from service.inference.model_store import graph_path
from tests.helpers.data import fer2013_dir
from training.calibrate import (
    Calibration,
    ConfidenceTemperature,
    apply,
    bake,
    calibrate_model,
    class_share_error,
    cross_fitted,
    draw_labels,
    ece_if_calibrated,
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
    labels = draw_labels(truth, rng)
    scale, fitted = fit(log_p, labels)
    assert scale == pytest.approx(2.0, abs=0.1)
    np.testing.assert_allclose(fitted, bias - bias.mean(), atol=0.1)
    honest = cross_fitted(log_p, labels)
    assert expected_calibration_error(honest, labels) < 0.02


# Softer as the top probability rises to logit 1, then sharper: what no single temperature does.
BENT = ConfidenceTemperature(0.3, -0.4, np.array([0.0, 1.0]), np.array([0.0, 0.9]), -2.0, 4.0)


def test_a_confidence_temperature_fit_straightens_what_one_temperature_cannot() -> None:
    rng = np.random.default_rng(1)
    log_p = np.log(rng.dirichlet(np.full(7, 0.4), size=20_000))
    truth = BENT(log_p)
    labels = draw_labels(truth, rng)
    vector_only, with_knots = cross_fitted(log_p, labels), cross_fitted(log_p, labels, knots=2)
    assert expected_calibration_error(with_knots, labels) < 0.5 * expected_calibration_error(vector_only, labels)
    assert (with_knots.argmax(1) == vector_only.argmax(1)).all()  # the top class never moves


def test_the_sampling_floor_of_the_calibration_error() -> None:
    sure = np.eye(7)[np.arange(70) % 7]
    assert ece_if_calibrated(sure)["mean"] == 0
    unsure = np.random.default_rng(2).dirichlet(np.ones(7), size=500)
    floor = ece_if_calibrated(unsure)
    assert 0 < floor["p5"] <= floor["mean"] <= floor["p95"] < 0.1


@pytest.mark.parametrize("confidence", [None, BENT], ids=["vector", "vector+confidence"])
def test_the_baked_graph_computes_the_calibrated_probabilities(
    float16_export: Path, tmp_path: Path, confidence: ConfidenceTemperature | None
) -> None:
    faces = load_split(fer2013_dir(), "test").images.numpy()[:200]
    calibration = Calibration(1.3, np.linspace(-0.5, 0.5, 7), confidence)
    bake(graph_path(float16_export), tmp_path / "model.onnx", calibration)
    before = onnx_probabilities(graph_path(float16_export), faces)
    after = onnx_probabilities(tmp_path / "model.onnx", faces)
    np.testing.assert_allclose(after, calibration(np.log(np.maximum(before, 1e-7))), atol=1e-5)
    # Calibrating again replaces the calibration instead of stacking a second one.
    again = Calibration(0.8, np.zeros(7), None)
    bake(tmp_path / "model.onnx", tmp_path / "again.onnx", again)
    np.testing.assert_allclose(
        onnx_probabilities(tmp_path / "again.onnx", faces), again(np.log(np.maximum(before, 1e-7))), atol=1e-5
    )


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
    # Recalibrating a calibrated version starts again from its uncalibrated graph.
    again = calibrate_model(target, tmp_path / "emotion" / "3", small_data, knots=1)
    assert again["cross_fitted"]["before"] == before and "confidence_temperature" in again
    metadata = json.loads((tmp_path / "emotion" / "3" / "metadata.json").read_text())
    assert metadata["calibrated_from"] == "emotion/1" and metadata["recalibrated_from"] == "emotion/2"
    exported = json.loads((float16_export / "metadata.json").read_text())["metrics"]
    assert metadata["metrics"]["before_calibration"]["accuracy"] == exported["accuracy"]
