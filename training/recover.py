"""Rebuild the member checkpoints of an exported model from its ONNX graph and metadata.

    python -m training.recover model_store/emotion/6 --out runs/recovered

Checkpoints live in run folders that are not kept with the project; the model store is the lasting
record. This writes `<out>/<member run>/best.pt` for each member network of the exported graph, in
the form `training.export --run` reads, so an exported ensemble can be extended with new runs
without retraining its members. The export folded each batch norm into the convolution before it;
the rebuilt network keeps that folding (the batch norm becomes an identity plus the folded bias),
so it computes the same function. Weights stored as float16 come back as those float16 values, and
those of an int8 graph as their dequantised values.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from service.inference.model_store import graph_path, read_graph
from training.model import EmotionNet, ModelConfig

FLOAT16_SUFFIX = "_float16"  # what training.export appends to an initialiser it stores as float16
DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"  # what onnxruntime's quantiser names a dequantised weight


def graph_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initialiser as float32, under the name the graph's operators read it by.

    An int8 graph feeds each convolution its weights through a DequantizeLinear node; those come
    back dequantised, under the name of the node's output, which is what the convolution reads, and
    under the parameter's own name, by which a convolution with no batch norm after it is found.
    """
    weights = {
        weight.name.removesuffix(FLOAT16_SUFFIX): numpy_helper.to_array(weight).astype(np.float32)
        for weight in model.graph.initializer
    }
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and all(name in weights for name in node.input):
            value = dequantized(node, weights)
            weights[node.output[0]] = weights[node.output[0].removesuffix(DEQUANTIZED_SUFFIX)] = value
    return weights


def dequantized(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> np.ndarray:
    """(quantised - zero point) * scale, the scale per tensor or per channel along the node's axis."""
    quantized, scale = weights[node.input[0]], weights[node.input[1]]
    zero_point = weights[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale)
    if scale.size > 1:
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 1)
        shape = [1] * quantized.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (quantized - zero_point) * scale


def module_name(node: onnx.NodeProto) -> str:
    """The PyTorch module a node was exported from, e.g. `nets.1.features.4.body.2.0`.

    The exporter names a node after its module scope, one component per level, where a level
    inside a container repeats its parent (`/nets.1/features/features.4/body/body.2/body.2.0/Conv`)
    and a later call of the same module gains a suffix (`features.6.2_1`).
    """
    path: list[str] = []
    for component in node.name.split("/")[1:-1]:
        component = re.sub(r"_\d+$", "", component)
        if path and component.startswith(path[-1] + "."):
            path[-1] = component
        else:
            path.append(component)
    return ".".join(path)


def folded_convolutions(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> dict[str, tuple[str, str]]:
    """(weight, bias) names of the convolutions that absorbed a batch norm, by module name.

    The exporter named these weights after no parameter, so they are matched through the names of
    the nodes that use them; graph order cannot be trusted, as quantisation reorders the nodes.
    """
    # Later views reach the same weights through Identity nodes: follow those back to the source.
    alias = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}

    def source(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    folded: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        pair = (source(node.input[1]), source(node.input[2]))
        if not pair[0].startswith("nets."):
            folded.setdefault(module_name(node), pair)
    missing = [name for pair in folded.values() for name in pair if name not in weights]
    if missing:
        raise ValueError(f"convolution weights missing from the graph: {missing[:3]}")
    return folded


def convolutions_with_batch_norm(net: EmotionNet) -> dict[str, tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Each convolution directly followed by a batch norm in its container, by module name."""
    pairs = {}
    for container_name, container in net.named_modules():
        if isinstance(container, nn.Sequential):
            for (name, conv), (_, batch_norm) in itertools.pairwise(container.named_children()):
                if isinstance(conv, nn.Conv2d) and isinstance(batch_norm, nn.BatchNorm2d):
                    pairs[f"{container_name}.{name}"] = (conv, batch_norm)
    return pairs


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
    model = onnx.load_from_string(read_graph(graph_path(model_dir)))
    weights = graph_weights(model)
    folded = folded_convolutions(model, weights)
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
        pairs = convolutions_with_batch_norm(net)
        for name, (conv, batch_norm) in pairs.items():
            weight_name, bias_name = folded.pop(prefix + name)
            load_folded(conv, batch_norm, weights[weight_name], weights[bias_name])
        # A parameter found nowhere in the graph would silently keep its random initial value.
        from_folding = {
            id(p) for conv, batch_norm in pairs.values() for p in (*conv.parameters(), *batch_norm.parameters())
        }
        missing = [
            name for name, p in net.named_parameters() if id(p) not in from_folding and prefix + name not in weights
        ]
        if missing:
            raise ValueError(f"member {index} parameters missing from the graph: {missing[:3]}")
        checkpoint = {
            "ema": net.state_dict(),
            "model_config": dataclasses.asdict(model_config),
            "train_config": recipe,
            "epoch": member["best_epoch"],
            "metrics": {"seconds": member["epoch_seconds"]},
            "recovered_from": f"{metadata['name']}/{metadata['version']}",
        }
        members.append((net.eval(), checkpoint))
    if folded:
        raise ValueError(f"folded convolutions that no member network has: {sorted(folded)[:3]}")
    return members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="an exported version folder, e.g. model_store/emotion/6")
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
