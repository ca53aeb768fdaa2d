"""Rebuild the member checkpoints of an exported model from its ONNX graph and metadata.

    python -m training.recover model_store/emotion/2 --out runs/recovered

Checkpoints live in run folders that are not kept with the project; the model store is the lasting
record. This writes `<out>/<member run>/best.pt` for each member network of the exported graph, in
the form `training.export --run` reads, so an exported ensemble can be extended with new runs
without retraining its members. The export folded each batch norm into the convolution before it;
the rebuilt network keeps that folding (the batch norm becomes an identity plus the folded bias),
so it computes the same function. Weights stored as float16 come back as those float16 values.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from training.model import EmotionNet, ModelConfig

FLOAT16_SUFFIX = "_float16"  # what training.export appends to an initialiser it stores as float16


def graph_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initialiser as float32, under the name the graph's operators read it by."""
    return {
        weight.name.removesuffix(FLOAT16_SUFFIX): numpy_helper.to_array(weight).astype(np.float32)
        for weight in model.graph.initializer
    }


def folded_convolutions(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """(weight, bias) names of the convolutions that absorbed a batch norm, in graph order.

    The exporter named these weights after no parameter, so they can only be matched by order:
    the graph lists each network's convolutions in the order its forward pass runs them.
    """
    # Later views reach the same weights through Identity nodes: follow those back to the source.
    alias = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}

    def source(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    folded: list[tuple[str, str]] = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        pair = (source(node.input[1]), source(node.input[2]))
        if not pair[0].startswith("nets.") and pair not in folded:
            folded.append(pair)
    missing = [name for pair in folded for name in pair if name not in weights]
    if missing:
        raise ValueError(f"convolution weights missing from the graph: {missing[:3]}")
    return folded


def convolutions_with_batch_norm(net: EmotionNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution directly followed by a batch norm, in the order the forward pass runs them."""
    following = {}
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            following.update({id(a): b for a, b in itertools.pairwise(children) if isinstance(b, nn.BatchNorm2d)})
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda m, *_: order.append(m)) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, 48, 48))
    for hook in hooks:
        hook.remove()
    return [(conv, following[id(conv)]) for conv in order if id(conv) in following]


def load_folded(conv: nn.Conv2d, batch_norm: nn.BatchNorm2d, weight: np.ndarray, bias: np.ndarray) -> None:
    """Give conv the folded weights and make the batch norm add the folded bias and nothing else."""
    if tuple(conv.weight.shape) != weight.shape:
        raise ValueError(f"folded weight {weight.shape} does not fit {tuple(conv.weight.shape)}")
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        batch_norm.weight.fill_(1.0)
        batch_norm.bias.copy_(torch.from_numpy(bias))
        batch_norm.running_mean.zero_()
        batch_norm.running_var.fill_(1.0 - batch_norm.eps)


def recover_members(model_dir: Path) -> list[tuple[EmotionNet, dict]]:
    """The member networks of an exported model, each with a checkpoint dict for training.export."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    model = onnx.load(str(model_dir / "model.onnx"))
    weights = graph_weights(model)
    folded = iter(folded_convolutions(model, weights))
    members = []
    for index, member in enumerate(metadata["members"]):
        recipe = member["recipe"]
        model_config = ModelConfig(recipe["arch"], recipe["width"], recipe["dropout"])
        net = EmotionNet(model_config)
        state = net.state_dict()
        prefix = f"nets.{index}."
        for name in state:
            if prefix + name in weights:
                state[name] = torch.from_numpy(weights[prefix + name]).reshape(state[name].shape)
        net.load_state_dict(state)
        for conv, batch_norm in convolutions_with_batch_norm(net):
            weight_name, bias_name = next(folded)
            load_folded(conv, batch_norm, weights[weight_name], weights[bias_name])
        checkpoint = {
            "ema": net.state_dict(),
            "model_config": dataclasses.asdict(model_config),
            "train_config": recipe,
            "epoch": member["best_epoch"],
            "metrics": {"seconds": member["epoch_seconds"]},
            "recovered_from": f"{metadata['name']}/{metadata['version']}",
        }
        members.append((net.eval(), checkpoint))
    if next(folded, None) is not None:
        raise ValueError("the graph has more folded convolutions than its members' networks")
    return members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="an exported version folder, e.g. model_store/emotion/2")
    parser.add_argument("--out", type=Path, default=Path("runs/recovered"))
    args = parser.parse_args()
    metadata = json.loads((args.model_dir / "metadata.json").read_text())
    for (_, checkpoint), member in zip(recover_members(args.model_dir), metadata["members"]):
        run = args.out / member["run"]
        run.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, run / "best.pt")
        print(f"wrote {run / 'best.pt'}")


if __name__ == "__main__":
    main()
