"""Calibrate an exported model, so the probabilities a client averages match what happens.

    python -m training.calibrate model_store/emotion/6 --out model_store/emotion/7
    python -m training.calibrate model_store/emotion-fast/2 --out model_store/emotion-fast/3 --confidence-knots 2

Label smoothing and averaging many passes leave an ensemble under-confident, and the
class-weighted loss inflates rare classes: the mean of the returned distributions then misstates
how often each emotion occurs. Vector scaling fixes both with eight numbers: the served
probabilities become softmax(scale * log p + bias), a temperature (1 / scale) for the confidence
and a per-class bias for the class prior. They are fitted by likelihood on PublicTest and baked
into the graph after its averaged probabilities.

A distilled network inherits its teacher's confidence profile, which one temperature cannot
straighten (over-confident in the middle, under-confident at the top). `--confidence-knots K`
adds a second stage: a temperature that depends on the top probability, piecewise linear in its
logit with K bends, fitted to how often the top class is right. It never changes which class is
on top. A graph calibrated before is recalibrated from its uncalibrated output, never stacked.

The figures reported are cross-fitted (fitted on one half of PublicTest, measured on the other,
both ways), so they are honest; the shipped constants are then fitted on all of it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from service.inference.model_store import graph_path, graph_sha256, read_graph, store_compressed
from training.data import CLASSES, load_split
from training.evaluate import onnx_probabilities
from training.metrics import classification_report

ECE_BINS = 15
# Probabilities are floored here before the logarithm: an int8 graph can return exact zeros.
FLOOR = 1e-7
# The top probability is kept this far from 0 and 1 before its logit is taken.
TOP_MARGIN = 1e-6
# Every tensor the calibration adds to a graph is named with this prefix, the raw output with RAW.
PREFIX = "calibration_"
RAW = "uncalibrated_probabilities"


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


def draw_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from that row's distribution."""
    return (rng.random((len(probs), 1)) > probs.cumsum(1)).sum(1).clip(0, probs.shape[1] - 1)


def ece_if_calibrated(probs: np.ndarray, draws: int = 200, seed: int = 0) -> dict:
    """The ECE a perfectly calibrated model with these answers would show on this many faces
    (labels drawn from its own probabilities): the estimator's noise floor, to read ECE against."""
    rng = np.random.default_rng(seed)
    errors = [expected_calibration_error(probs, draw_labels(probs, rng)) for _ in range(draws)]
    low, high = np.percentile(errors, [5, 95])
    return {"mean": round(float(np.mean(errors)), 4), "p5": round(float(low), 4), "p95": round(float(high), 4)}


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
    return np.exp(vector_scaled(log_probs, scale, bias))


def vector_scaled(log_probs: np.ndarray, scale: float, bias: np.ndarray) -> np.ndarray:
    """The log-probabilities after vector scaling: the first stage, and the second one's input."""
    return log_softmax(scale * log_probs + bias)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def top_logit(log_probs: np.ndarray) -> np.ndarray:
    top = np.clip(np.exp(log_probs.max(1)), TOP_MARGIN, 1 - TOP_MARGIN)
    return np.log(top) - np.log1p(-top)


@dataclass(frozen=True)
class ConfidenceTemperature:
    """softmax(s * log p) with s = exp(g(logit of the top probability)), g piecewise linear with
    bends at `knots` and held flat outside the range it was fitted on. s > 0 keeps the top class."""

    intercept: float
    slope: float
    knots: np.ndarray
    bends: np.ndarray
    lowest: float
    highest: float

    def __call__(self, log_probs: np.ndarray) -> np.ndarray:
        x = np.clip(top_logit(log_probs), self.lowest, self.highest)
        g = self.intercept + self.slope * x + np.maximum(x[:, None] - self.knots, 0) @ self.bends
        return np.exp(log_softmax(np.exp(g)[:, None] * log_probs))

    def record(self) -> dict:
        return {
            "intercept": round(self.intercept, 6),
            "slope": round(self.slope, 6),
            "knots": [round(float(k), 6) for k in self.knots],
            "bends": [round(float(b), 6) for b in self.bends],
            "logit_range": [round(self.lowest, 6), round(self.highest, 6)],
        }


def fit_confidence_temperature(log_probs: np.ndarray, labels: np.ndarray, knots: int) -> ConfidenceTemperature:
    """Fitted by the likelihood of "the top class is right" under the top probability, which is
    what ECE measures; knots at equal quantiles of the top probability's logit."""
    x_np = top_logit(log_probs)
    knots_np = np.quantile(x_np, np.linspace(0, 1, knots + 2)[1:-1])
    x, knot = torch.from_numpy(x_np), torch.from_numpy(knots_np)
    scaled = torch.from_numpy(log_probs).double()
    correct = torch.from_numpy((log_probs.argmax(1) == labels).astype(np.float64))
    line = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # intercept, slope: s = 1 to start
    bends = torch.zeros(knots, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([line, bends], lr=0.5, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        g = line[0] + line[1] * x + torch.relu(x[:, None] - knot) @ bends
        top = torch.softmax(torch.exp(g)[:, None] * scaled, 1).max(1).values
        loss = torch.nn.functional.binary_cross_entropy(top.clamp(TOP_MARGIN, 1 - TOP_MARGIN), correct)
        loss.backward()
        return loss

    optimiser.step(closure)
    intercept, slope = (float(v) for v in line.detach())
    return ConfidenceTemperature(
        intercept, slope, knots_np, bends.detach().numpy(), float(x_np.min()), float(x_np.max())
    )


@dataclass(frozen=True)
class Calibration:
    """Vector scaling, then (if fitted) the confidence-dependent temperature: what the graph bakes in."""

    scale: float
    bias: np.ndarray
    confidence: ConfidenceTemperature | None

    def __call__(self, log_probs: np.ndarray) -> np.ndarray:
        scaled = vector_scaled(log_probs, self.scale, self.bias)
        return np.exp(scaled) if self.confidence is None else self.confidence(scaled)


def fit_calibration(log_probs: np.ndarray, labels: np.ndarray, knots: int | None) -> Calibration:
    scale, bias = fit(log_probs, labels)
    if knots is None:
        return Calibration(scale, bias, None)
    scaled = vector_scaled(log_probs, scale, bias)
    return Calibration(scale, bias, fit_confidence_temperature(scaled, labels, knots))


def cross_fitted(log_probs: np.ndarray, labels: np.ndarray, knots: int | None = None, seed: int = 0) -> np.ndarray:
    """Each half of the faces calibrated with constants fitted on the other half."""
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    out = np.empty_like(log_probs)
    for fit_on, measure_on in (halves, halves[::-1]):
        out[measure_on] = fit_calibration(log_probs[fit_on], labels[fit_on], knots)(log_probs[measure_on])
    return out


def uncalibrated(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without a calibration baked in before (unchanged if there is none)."""
    graph = model.graph
    (output,) = graph.output
    if not any(RAW in node.output for node in graph.node):
        return model
    added = [n for n in graph.node if output.name in n.output or any(i == RAW or i.startswith(PREFIX) for i in n.input)]
    for node in added:
        graph.node.remove(node)
    for constant in [t for t in graph.initializer if t.name.startswith(PREFIX)]:
        graph.initializer.remove(constant)
    for node in graph.node:
        node.output[:] = [output.name if name == RAW else name for name in node.output]
    return model


def _confidence_nodes(confidence: ConfidenceTemperature, log_probs: str, output: str) -> tuple[list, list]:
    """Nodes computing `output` = softmax(s * log_probs) as ConfidenceTemperature does."""
    c = {
        "one": np.array(1, np.float32),
        "top_min": np.array(TOP_MARGIN, np.float32),
        "top_max": np.array(1 - TOP_MARGIN, np.float32),
        "lowest": np.array(confidence.lowest, np.float32),
        "highest": np.array(confidence.highest, np.float32),
        "knots": confidence.knots.astype(np.float32).reshape(1, -1),
        "bends": confidence.bends.astype(np.float32).reshape(-1, 1),
        "slope": np.array(confidence.slope, np.float32),
        "intercept": np.array(confidence.intercept, np.float32),
    }
    constants = [numpy_helper.from_array(v, PREFIX + k) for k, v in c.items()]

    def node(op: str, inputs: list[str], out: str, **attributes: object) -> onnx.NodeProto:
        return helper.make_node(op, [i if i == log_probs else PREFIX + i for i in inputs], [out], **attributes)

    p = PREFIX
    nodes = [
        node("ReduceMax", [log_probs], p + "top_log", axes=[1], keepdims=1),
        node("Exp", ["top_log"], p + "top"),
        node("Clip", ["top", "top_min", "top_max"], p + "top_kept"),
        node("Log", ["top_kept"], p + "top_log_kept"),
        node("Sub", ["one", "top_kept"], p + "rest"),
        node("Log", ["rest"], p + "rest_log"),
        node("Sub", ["top_log_kept", "rest_log"], p + "top_logit"),
        node("Clip", ["top_logit", "lowest", "highest"], p + "x"),
        node("Sub", ["x", "knots"], p + "past_knots"),
        node("Relu", ["past_knots"], p + "hinges"),
        node("MatMul", ["hinges", "bends"], p + "bent"),
        node("Mul", ["x", "slope"], p + "sloped"),
        node("Add", ["sloped", "intercept"], p + "line"),
        node("Add", ["line", "bent"], p + "g"),
        node("Exp", ["g"], p + "sharpness"),
        node("Mul", [log_probs, "sharpness"], p + "sharpened"),
        node("Softmax", ["sharpened"], output, axis=1),
    ]
    return nodes, constants


def bake(source: Path, target: Path, calibration: Calibration) -> None:
    """Append the calibration after the graph's probabilities output (replacing an earlier one)."""
    model = uncalibrated(onnx.load_from_string(read_graph(source)))
    graph = model.graph
    (output,) = graph.output
    for node in graph.node:
        node.output[:] = [RAW if name == output.name else name for name in node.output]
    constants = {
        "floor": np.array(FLOOR, np.float32),
        "scale": np.array(calibration.scale, np.float32),
        "bias": calibration.bias.astype(np.float32).reshape(1, -1),
    }
    graph.initializer.extend(numpy_helper.from_array(v, PREFIX + k) for k, v in constants.items())
    p = PREFIX
    graph.node.extend(
        [
            helper.make_node("Max", [RAW, p + "floor"], [p + "floored"]),
            helper.make_node("Log", [p + "floored"], [p + "log"]),
            helper.make_node("Mul", [p + "log", p + "scale"], [p + "scaled"]),
            helper.make_node("Add", [p + "scaled", p + "bias"], [p + "logits"]),
        ]
    )
    if calibration.confidence is None:
        graph.node.append(helper.make_node("Softmax", [p + "logits"], [output.name], axis=1))
    else:
        graph.node.append(helper.make_node("LogSoftmax", [p + "logits"], [p + "log_probs"], axis=1))
        nodes, confidence_constants = _confidence_nodes(calibration.confidence, p + "log_probs", output.name)
        graph.node.extend(nodes)
        graph.initializer.extend(confidence_constants)
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


def calibrate_model(
    source: Path, target: Path, data: Path, diagram: Path | None = None, knots: int | None = None
) -> dict:
    """Fit, bake and record; `target` may be `source` (in place). Returns the calibration record."""
    test = load_split(data, "test")
    images, labels = test.images.numpy(), test.labels.numpy()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "uncalibrated.onnx"
        onnx.save(uncalibrated(onnx.load_from_string(read_graph(graph_path(source)))), str(raw))
        probs = onnx_probabilities(raw, images)
        log_probs = np.log(np.maximum(probs, FLOOR))
        honest = cross_fitted(log_probs, labels, knots)
        calibration = fit_calibration(log_probs, labels, knots)
        target.mkdir(parents=True, exist_ok=True)
        bake(raw, target / "model.onnx", calibration)
    shipped = onnx_probabilities(target / "model.onnx", images)
    store_compressed(target)
    metadata = json.loads((source / "metadata.json").read_text())
    metrics = metadata["metrics"]
    if metadata.pop("calibration", None) is None:
        metadata["output"]["meaning"] += ", calibrated (see calibration)"
        metrics["before_calibration"] = {key: metrics[key] for key in ("accuracy", "macro_f1", "recall", "precision")}
        if source.resolve() != target.resolve():
            metadata["calibrated_from"] = f"{source.parent.name}/{source.name}"
    elif source.resolve() != target.resolve():
        metadata["recalibrated_from"] = f"{source.parent.name}/{source.name}"
    served = classification_report(labels, shipped.argmax(1))
    metrics.update(
        accuracy=round(served.accuracy, 4),
        macro_f1=round(served.macro_f1, 4),
        recall={k: round(v, 4) for k, v in served.recall.items()},
        precision={k: round(v, 4) for k, v in served.precision.items()},
    )
    record = {
        "method": "vector scaling: softmax(scale * log p + bias) after the averaged probabilities",
        "scale": round(calibration.scale, 6),
        "bias": dict(zip(CLASSES, (round(float(b), 6) for b in calibration.bias))),
    }
    if calibration.confidence is not None:
        record["method"] += (
            "; then softmax(s * log q) on those, s = exp(g(logit of the top probability)),"
            " g piecewise linear, fitted to how often the top class is right"
        )
        record["confidence_temperature"] = calibration.confidence.record()
    record |= {
        "fitted_on": "FER-2013 PublicTest (all 3,589 images)",
        "cross_fitted": {
            "how": "fitted on one random half of PublicTest, measured on the other, both ways",
            "before": calibration_figures(probs, labels),
            "after": calibration_figures(honest, labels),
            "ece_if_perfectly_calibrated": ece_if_calibrated(honest),
        },
        "shipped_graph_on_publictest": calibration_figures(shipped, labels),
    }
    metadata.update(version=target.name, sha256=graph_sha256(graph_path(target)), calibration=record)
    (target / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if diagram is not None:
        title = f"{metadata['name']} {target.name}: scale {calibration.scale:.2f}"
        reliability_diagram(probs, honest, labels, title, diagram)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a model version folder, e.g. model_store/emotion/6")
    parser.add_argument("--out", type=Path, help="the calibrated version's folder; default: in place")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--diagram", type=Path, help="write the reliability diagram here (PNG)")
    parser.add_argument(
        "--confidence-knots", type=int, help="add a confidence-dependent temperature with this many bends"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    record = calibrate_model(args.source, args.out or args.source, args.data, args.diagram, args.confidence_knots)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
