"""Evaluate an exported ONNX emotion model (what ships) on FER-2013 in either form.

    python -m training.evaluate model_store/emotion/7/model.onnx.gz [--data ../shared/data/fer2013]
        [--split test] [--out reports/]

Prints accuracy, macro-F1 and per-class precision and recall; writes `confusion.png` and
`report.json` to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from service.inference.classifier import model_input as service_model_input
from service.inference.model_store import onnxruntime_session
from training.data import SPLIT_USAGE, load_split
from training.metrics import Report, classification_report, plot_confusion

PIXEL_SCALE = 1 / 255  # recorded in each model's metadata, which the service scales by


def model_input(images: np.ndarray) -> np.ndarray:
    """uint8 faces [N, 48, 48] as the service feeds them to the graph."""
    return service_model_input(images, PIXEL_SCALE)


def onnx_probabilities(model_path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run uint8 faces [N, 48, 48] through an exported graph, as the service does."""
    session = onnxruntime_session(model_path)
    name = session.get_inputs()[0].name
    outputs = [
        session.run(None, {name: model_input(images[i : i + batch_size])})[0] for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs)


def evaluate_onnx(model_path: Path, data: Path, split: str) -> Report:
    dataset = load_split(data, split)
    probs = onnx_probabilities(model_path, dataset.images.numpy())
    return classification_report(dataset.labels.numpy(), probs.argmax(1))


def print_report(report: Report) -> None:
    print(f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}")
    print(f"{'class':10s} {'precision':>9s} {'recall':>7s}")
    for name in report.precision:
        print(f"{name:10s} {report.precision[name]:9.3f} {report.recall[name]:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="an exported model.onnx or model.onnx.gz")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/fer2013"),
        help="a folder-layout root, a split folder, or fer2013.csv",
    )
    parser.add_argument("--split", choices=sorted(SPLIT_USAGE), default="test")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args()

    report = evaluate_onnx(args.model, args.data, args.split)
    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_confusion(report, args.out / "confusion.png", f"{args.model} on {args.split}")
    (args.out / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")


if __name__ == "__main__":
    main()
