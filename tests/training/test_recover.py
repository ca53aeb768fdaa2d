import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import DATA_DIR, ENSEMBLE_V2, ENSEMBLE_V3_INT8, ENSEMBLE_V4_INT8
from training.data import load_split
from training.evaluate import onnx_probabilities
from training.export import agreement, load_checkpoint, pytorch_probabilities
from training.model import ServingModel
from training.recover import main as recover_main
from training.recover import recover_members


def recovered_against_graph(model_dir: Path) -> tuple[list[str], dict[str, float]]:
    """The recovered members' architectures, and how their ensemble (views as recorded) agrees with the graph."""
    members = recover_members(model_dir)
    views = json.loads((model_dir / "metadata.json").read_text())["test_time_views"]
    serving = ServingModel([net for net, _ in members], views["mirror"], views["crop_scales"]).eval()
    faces = load_split(DATA_DIR, "test").images.numpy()[::36]  # 100 real faces of every class
    checks = agreement(onnx_probabilities(model_dir / "model.onnx", faces), pytorch_probabilities(serving, faces))
    return [checkpoint["model_config"]["arch"] for _, checkpoint in members], checks


def test_recovered_members_compute_what_the_shipped_graph_computes() -> None:
    architectures, checks = recovered_against_graph(ENSEMBLE_V2)
    assert architectures == ["xception", "vgg"]
    assert checks["argmax_agreement"] == 1.0
    assert checks["max_abs_difference"] < 1e-4


@pytest.mark.parametrize(
    ("model_dir", "expected"),
    [(ENSEMBLE_V4_INT8, ["vgg", "resnet"]), (ENSEMBLE_V3_INT8, ["xception", "vgg"])],
    ids=["version 4", "version 3"],
)
def test_members_of_an_int8_graph_come_back_with_their_dequantised_weights(
    model_dir: Path, expected: list[str]
) -> None:
    architectures, checks = recovered_against_graph(model_dir)
    assert architectures == expected
    # The graph also rounds activations to 8 bits, which the float network does not: close, not equal.
    assert checks["argmax_agreement"] >= 0.97
    assert checks["max_abs_difference"] < 0.1


def test_recovered_checkpoints_load_for_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["recover", str(ENSEMBLE_V2), "--out", str(tmp_path)])
    recover_main()
    net, checkpoint = load_checkpoint(tmp_path / "vgg")
    assert checkpoint["recovered_from"] == "emotion/2"
    assert checkpoint["train_config"]["arch"] == "vgg"
    recovered = dict(recover_members(ENSEMBLE_V2)[1][0].state_dict())
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, recovered[name])
    assert np.isfinite(checkpoint["metrics"]["seconds"])
