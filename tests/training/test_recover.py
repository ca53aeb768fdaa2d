import json
from pathlib import Path

import numpy as np
import pytest
import torch

from service.config import PROJECT_ROOT
from service.inference.model_store import graph_path
from tests.helpers.data import fer2013_dir
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
    faces = load_split(fer2013_dir(), "test").images.numpy()[::72]  # 50 real faces of every class
    checks = agreement(onnx_probabilities(graph_path(model_dir), faces), pytorch_probabilities(serving, faces))
    return [checkpoint["model_config"]["arch"] for _, checkpoint in members], checks


# A stored int8 ensemble of a VGG-style and three ResNet-style networks.
ENSEMBLE_INT8 = PROJECT_ROOT / "model_store" / "emotion" / "6"


def test_recovered_members_compute_what_the_exported_graph_computes(float16_export: Path) -> None:
    architectures, checks = recovered_against_graph(float16_export)
    assert architectures == ["xception", "vgg"]  # depthwise convolutions without batch norm, and folded ones
    assert checks["argmax_agreement"] == 1.0
    assert checks["max_abs_difference"] < 1e-4


def test_members_of_an_int8_graph_come_back_with_their_dequantised_weights() -> None:
    architectures, checks = recovered_against_graph(ENSEMBLE_INT8)
    assert architectures == ["resnet_fullres", "vgg", "resnet", "resnet"]
    # The graph also rounds activations to 8 bits, which the float network does not: close, not equal.
    assert checks["argmax_agreement"] >= 0.97
    assert checks["max_abs_difference"] < 0.1


def test_recovered_checkpoints_load_for_export(
    float16_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["recover", str(float16_export), "--out", str(tmp_path)])
    recover_main()
    vgg_run = next(p for p in tmp_path.iterdir() if p.name.startswith("export-vgg"))
    net, checkpoint = load_checkpoint(vgg_run)
    assert checkpoint["recovered_from"] == "emotion/1"
    assert checkpoint["train_config"]["arch"] == "vgg"
    recovered = dict(recover_members(float16_export)[1][0].state_dict())
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, recovered[name])
    assert np.isfinite(checkpoint["metrics"]["seconds"])
