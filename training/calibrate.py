"""Calibrate an exported model, so the probabilities a client averages match what happens.

    python -m training.calibrate model_store/emotion/6 --out model_store/emotion/7
    python -m training.calibrate model_store/emotion-fast/2          # in place

Label smoothing and averaging many passes leave an ensemble under-confident, and the
class-weighted loss inflates rare classes: the mean of the returned distributions then misstates
how often each emotion occurs. Vector scaling fixes both with eight numbers: the served
probabilities become softmax(scale * log p + bias), a temperature (1 / scale) for the confidence
and a per-class bias for the class prior. They are fitted by likelihood on PublicTest and baked
into the graph after its averaged probabilities.

The figures reported are cross-fitted (fitted on one half of PublicTest, measured on the other,
both ways), so they are honest; the shipped constants are then fitted on all of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from service.model_store import file_sha256
from training.data import CLASSES, load_split
from training.evaluate import onnx_probabilities
from training.metrics import classification_report

ECE_BINS = 15
# Probabilities are floored here before the logarithm: an int8 graph can return exact zeros.
FLOOR = 1e-7


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by their size."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            gap += chosen.mean() * abs(correct[chosen].mean() - confidence[chosen].mean())
    return float(gap)


def class_share_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Half the L1 distance between the mean returned distribution and the true class shares."""
    shares = np.bincount(labels, minlength=probs.shape[1]) / len(labels)
    return float(np.abs(probs.mean(0) - shares).sum() / 2)


def calibration_figures(probs: np.ndarray, labels: np.ndarray) -> dict:
    report = classification_report(labels, probs.argmax(1))
    picked = probs[np.arange(len(labels)), labels]
    onehot = np.eye(probs.shape[1])[labels]
    return {
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "nll": round(float(-np.log(np.maximum(picked, 1e-12)).mean()), 4),
        "brier": round(float(((probs - onehot) ** 2).sum(1).mean()), 4),
        "ece": round(expected_calibration_error(probs, labels), 4),
        "class_share_error": round(class_share_error(probs, labels), 4),
        "mean_confidence": round(float(probs.max(1).mean()), 4),
        "disgust_recall": round(report.recall["disgust"], 4),
    }


def fit(log_probs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The scale and per-class bias that maximise the likelihood of the labels."""
    x, y = torch.from_numpy(log_probs).double(), torch.from_numpy(labels)
    scale = torch.ones(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([scale, bias], lr=0.5, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(scale * x + bias, y)
        loss.backward()
        return loss

    optimiser.step(closure)
    bias_centred = (bias - bias.mean()).detach().numpy()  # softmax ignores a shared shift
    return float(scale.item()), bias_centred


def apply(log_probs: np.ndarray, scale: float, bias: np.ndarray) -> np.ndarray:
    z = scale * log_probs + bias
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def cross_fitted(log_probs: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each half of the faces calibrated with constants fitted on the other half."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    out = np.empty_like(log_probs)
    for fit_on, measure_on in (halves, halves[::-1]):
        scale, bias = fit(log_probs[fit_on], labels[fit_on])
        out[measure_on] = apply(log_probs[measure_on], scale, bias)
    return out


def bake(source: Path, target: Path, scale: float, bias: np.ndarray) -> None:
    """Append floor, log, scale, bias and softmax after the graph's probabilities output."""
    model = onnx.load(str(source))
    graph = model.graph
    (output,) = graph.output
    raw = "uncalibrated_probabilities"
    for node in graph.node:
        node.output[:] = [raw if name == output.name else name for name in node.output]
    constants = {
        "calibration_floor": np.array(FLOOR, np.float32),
        "calibration_scale": np.array(scale, np.float32),
        "calibration_bias": bias.astype(np.float32).reshape(1, -1),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    graph.node.extend(
        [
            helper.make_node("Max", [raw, "calibration_floor"], ["calibration_floored"]),
            helper.make_node("Log", ["calibration_floored"], ["calibration_log"]),
            helper.make_node("Mul", ["calibration_log", "calibration_scale"], ["calibration_scaled"]),
            helper.make_node("Add", ["calibration_scaled", "calibration_bias"], ["calibration_logits"]),
            helper.make_node("Softmax", ["calibration_logits"], [output.name], axis=1),
        ]
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))


def reliability_diagram(before: np.ndarray, after: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    """Accuracy against confidence per bin, before and after, with the class shares beside it."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    edges = np.linspace(0, 1, ECE_BINS + 1)
    for probs, name, colour in ((before, "before", "#c0392b"), (after, "after", "#2f6fde")):
        confidence, correct = probs.max(1), probs.argmax(1) == labels
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, ECE_BINS - 1)
        points = [
            (confidence[which == b].mean(), correct[which == b].mean()) for b in range(ECE_BINS) if (which == b).any()
        ]
        ece = expected_calibration_error(probs, labels)
        left.plot(*zip(*points), "o-", color=colour, label=f"{name} (ECE {ece:.3f})")
    left.plot([0, 1], [0, 1], "--", color="#888")
    left.set(xlabel="confidence (top probability)", ylabel="accuracy", title="reliability, PublicTest cross-fitted")
    left.legend()
    shares = np.bincount(labels, minlength=len(CLASSES)) / len(labels)
    x = np.arange(len(CLASSES))
    right.bar(x - 0.27, shares, 0.27, label="true share", color="#555")
    right.bar(x, before.mean(0), 0.27, label="mean returned, before", color="#c0392b")
    right.bar(x + 0.27, after.mean(0), 0.27, label="mean returned, after", color="#2f6fde")
    right.set_xticks(x, CLASSES, rotation=30)
    right.set(title="class shares")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def calibrate_model(source: Path, target: Path, data: Path, diagram: Path | None = None) -> dict:
    """Fit, bake and record; `target` may be `source` (in place). Returns the calibration record."""
    test = load_split(data, "test")
    images, labels = test.images.numpy(), test.labels.numpy()
    probs = onnx_probabilities(source / "model.onnx", images)
    log_probs = np.log(np.maximum(probs, FLOOR))
    honest = cross_fitted(log_probs, labels)
    scale, bias = fit(log_probs, labels)
    with tempfile.TemporaryDirectory() as tmp:
        baked = Path(tmp) / "model.onnx"
        bake(source / "model.onnx", baked, scale, bias)
        shipped = onnx_probabilities(baked, images)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(baked, target / "model.onnx")
    metadata = json.loads((source / "metadata.json").read_text())
    served = classification_report(labels, shipped.argmax(1))
    metrics = metadata["metrics"]
    metrics["before_calibration"] = {key: metrics[key] for key in ("accuracy", "macro_f1", "recall", "precision")}
    metrics.update(
        accuracy=round(served.accuracy, 4),
        macro_f1=round(served.macro_f1, 4),
        recall={k: round(v, 4) for k, v in served.recall.items()},
        precision={k: round(v, 4) for k, v in served.precision.items()},
    )
    record = {
        "method": "vector scaling: softmax(scale * log p + bias) after the averaged probabilities",
        "scale": round(scale, 6),
        "bias": dict(zip(CLASSES, (round(float(b), 6) for b in bias))),
        "fitted_on": "FER-2013 PublicTest (all 3,589 images)",
        "cross_fitted": {
            "how": "fitted on one random half of PublicTest, measured on the other, both ways",
            "before": calibration_figures(probs, labels),
            "after": calibration_figures(honest, labels),
        },
        "shipped_graph_on_publictest": calibration_figures(shipped, labels),
    }
    metadata.update(
        version=target.name,
        sha256=file_sha256(target / "model.onnx"),
        calibration=record,
    )
    metadata["output"]["meaning"] += ", calibrated (see calibration)"
    if source.resolve() != target.resolve():
        metadata["calibrated_from"] = f"{source.parent.name}/{source.name}"
    (target / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if diagram is not None:
        title = f"{metadata['name']} {target.name}: scale {scale:.2f}"
        reliability_diagram(probs, honest, labels, title, diagram)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a model version folder, e.g. model_store/emotion/6")
    parser.add_argument("--out", type=Path, help="the calibrated version's folder; default: in place")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--diagram", type=Path, help="write the reliability diagram here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    record = calibrate_model(args.source, args.out or args.source, args.data, args.diagram)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
