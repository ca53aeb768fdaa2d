"""Export the best checkpoint to the model store: the offline step between training and serving.

    python -m training.export --run runs/xception runs/vgg [--crop-scales 0.9 1.1] [--version N]

A run may also be one rebuilt from an earlier export by `training.recover`.

Writes `model_store/emotion/<version>/model.onnx.gz` (opset 17, dynamic batch, probabilities out;
the average over every given run's best network, over each face's mirror image and over any extra
crop scales, inside the graph) and `metadata.json`. Checks the graph with onnx.checker, checks
parity with PyTorch on PublicTest, measures accuracy of the face alone, with its mirror, and of
each member alone, and tries int8 quantisation, keeping it only if it is faster and loses under
half a point. Otherwise the weights are stored in float16 and cast back to float32 when the session
loads: the file is half the size and serving still computes in float32.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
from torch import nn

from service.inference.model_store import available_versions, graph_sha256, onnxruntime_session, store_compressed
from training.calibrate_alignment import TEMPLATE_PATH
from training.data import CLASSES, load_split
from training.evaluate import PIXEL_SCALE, model_input, onnx_probabilities
from training.metrics import classification_report
from training.model import ModelConfig, ServingModel, build_network, count_macs, count_parameters

OPSET = 17
MODEL_NAME = "emotion"
# Tensors smaller than this (biases, sampling grids) stay float32: halving them saves nothing.
FLOAT16_MIN_ELEMENTS = 256


def load_checkpoint(run: Path) -> tuple[nn.Module, dict]:
    checkpoint = torch.load(run / "best.pt", weights_only=False)
    net = build_network(ModelConfig(**checkpoint["model_config"]))
    net.load_state_dict(checkpoint["ema"])
    return net.eval(), checkpoint


def export_onnx(serving: ServingModel, path: Path) -> None:
    torch.onnx.export(
        serving,
        (torch.zeros(1, 1, 48, 48),),
        str(path),
        opset_version=OPSET,
        dynamo=False,
        input_names=["input"],
        output_names=["probabilities"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def pytorch_probabilities(serving: ServingModel, images: np.ndarray) -> np.ndarray:
    """The reference every export is checked against: the PyTorch graph in float32."""
    with torch.no_grad():
        x = torch.from_numpy(model_input(images))
        return torch.cat([serving(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How closely two sets of probabilities for the same faces match."""
    return {
        "argmax_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
        "max_abs_difference": float(np.abs(reference - candidate).max()),
    }


def store_weights_as_float16(path: Path) -> None:
    """Halve the file: large float32 weights become float16 initialisers, each behind a Cast back to
    float32 that onnxruntime folds into a constant when the session loads."""
    model = onnx.load(str(path))
    casts = []
    for weight in model.graph.initializer:
        if weight.data_type != TensorProto.FLOAT or np.prod(weight.dims) < FLOAT16_MIN_ELEMENTS:
            continue
        name, halved = weight.name, numpy_helper.to_array(weight).astype(np.float16)
        weight.CopyFrom(numpy_helper.from_array(halved, f"{name}_float16"))
        casts.append(helper.make_node("Cast", [f"{name}_float16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)  # every Cast ahead of its consumers keeps the order topological
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    return float((onnx_probabilities(path, images).argmax(1) == labels).mean())


class FaceReader(CalibrationDataReader):
    def __init__(self, images: np.ndarray) -> None:
        self.batches = iter([{"input": model_input(images[i : i + 64])} for i in range(0, len(images), 64)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def crops_per_second(path: Path, batch: int = 32, repeats: int = 30) -> float:
    session = onnxruntime_session(path)
    x = np.random.default_rng(0).random((batch, 1, 48, 48), dtype=np.float32)
    session.run(None, {"input": x})
    started = time.perf_counter()
    for _ in range(repeats):
        session.run(None, {"input": x})
    return batch * repeats / (time.perf_counter() - started)


def try_int8(path: Path, calibration: np.ndarray, images: np.ndarray, labels: np.ndarray, float_acc: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "int8.onnx"
        # Convolutions only: a quantised softmax returns probabilities in steps of 1/255 that no
        # longer sum to 1.
        quantize_static(
            str(path),
            str(quantized),
            FaceReader(calibration),
            op_types_to_quantize=["Conv"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        int8_acc = accuracy(quantized, images, labels)
        speed_float, speed_int8 = crops_per_second(path), crops_per_second(quantized)
        keep = speed_int8 > speed_float and float_acc - int8_acc < 0.005
        result = {
            "accuracy": round(int8_acc, 4),
            "crops_per_second_float32": round(speed_float),
            "crops_per_second_int8": round(speed_int8),
            "kept": keep,
        }
        if keep:
            path.write_bytes(quantized.read_bytes())
        return result


def variant_accuracy(serving: ServingModel, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of a variant that does not ship, measured the way the shipped graph is."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "variant.onnx"
        export_onnx(serving.eval(), path)
        store_weights_as_float16(path)
        return accuracy(path, images, labels)


def describe(net: nn.Module, checkpoint: dict, run: Path, accuracy: float) -> dict:
    recovered = {"recovered_from": checkpoint["recovered_from"]} if "recovered_from" in checkpoint else {}
    return {
        "run": run.name,
        **recovered,
        "architecture": checkpoint["model_config"]["arch"],
        "parameters": count_parameters(net),
        "mflops_per_view": round(2 * count_macs(net) / 1e6),
        "best_epoch": checkpoint["epoch"],
        "epoch_seconds": round(checkpoint["metrics"]["seconds"], 1),
        "accuracy_alone_with_mirror_averaging": round(accuracy, 4),
        "recipe": checkpoint["train_config"],
    }


def export_model(
    runs: list[Path],
    data: Path,
    store: Path,
    version: str | None,
    crop_scales: Sequence[float] = (),
    name: str = MODEL_NAME,
    int8: bool = True,
) -> Path:
    """Export, check and measure the runs' best checkpoints as one graph; returns the version's folder.

    With `int8` false the weights are stored in float16 without trying int8."""
    loaded = [load_checkpoint(run) for run in runs]
    nets = [net for net, _ in loaded]
    serving = ServingModel(nets, mirror=True, crop_scales=crop_scales).eval()
    versions = available_versions(store, name)
    version = version or str(int(versions[-1]) + 1 if versions else 1)
    folder = store / name / version
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.onnx"

    test = load_split(data, "test")
    images, labels = test.images.numpy(), test.labels.numpy()
    export_onnx(serving, model_path)
    float32_probs = onnx_probabilities(model_path, images)
    checks = agreement(pytorch_probabilities(serving, images), float32_probs)
    print(f"parity with PyTorch on PublicTest: {checks}")

    plain_acc = variant_accuracy(ServingModel(nets, mirror=False), images, labels)
    members = [
        describe(net, checkpoint, run, variant_accuracy(ServingModel([net]), images, labels))
        for run, (net, checkpoint) in zip(runs, loaded)
    ]
    float32_acc = float((float32_probs.argmax(1) == labels).mean())
    train_sample = load_split(data, "train").images.numpy()[::60]  # about 480 faces to calibrate
    int8 = try_int8(model_path, train_sample, images, labels, float32_acc) if int8 else {"kept": False, "tried": False}
    if not int8["kept"]:
        store_weights_as_float16(model_path)
    shipped_probs = onnx_probabilities(model_path, images)
    weights = {
        "stored_as": "int8" if int8["kept"] else "float16",
        "computed_in": "int8" if int8["kept"] else "float32",
        "agreement_with_float32_weights": agreement(float32_probs, shipped_probs),
    }
    report = classification_report(labels, shipped_probs.argmax(1))
    mirror_acc = variant_accuracy(ServingModel(nets), images, labels) if crop_scales else report.accuracy
    print(
        f"PublicTest accuracy {report.accuracy:.4f} (face alone {plain_acc:.4f}, with its mirror "
        f"{mirror_acc:.4f}; members alone with mirror "
        f"{', '.join(str(m['accuracy_alone_with_mirror_averaging']) for m in members)}), macro-F1 "
        f"{report.macro_f1:.4f}, disgust recall {report.recall['disgust']:.3f}; int8: {int8}; weights: {weights}"
    )

    views = serving.views_per_face
    metadata = {
        "name": name,
        "version": version,
        "task": "facial expression classification (FER-2013, 7 classes)",
        "architecture": " + ".join(f"{m['architecture']} ({m['parameters'] / 1e6:.2f}M parameters)" for m in members)
        + f" (training/model.py), {views * sum(m['mflops_per_view'] for m in members)} MFLOPs per face over "
        + f"{views} views",
        "sha256": graph_sha256(model_path),
        "input": {"name": "input", "shape": ["batch", 1, 48, 48], "dtype": "float32"},
        "output": {
            "name": "probabilities",
            "shape": ["batch", len(CLASSES)],
            "meaning": "softmax probabilities, averaged over the member networks and the test-time views",
        },
        "classes": list(CLASSES),
        "preprocessing": {
            "color": "grayscale (OpenCV BGR to gray)",
            "scale": PIXEL_SCALE,
            "alignment_template": json.loads(TEMPLATE_PATH.read_text()),
        },
        "metrics": {
            "dataset": "FER-2013 PublicTest (all 3,589 images), model selection on the same split",
            "accuracy": round(report.accuracy, 4),
            "accuracy_single_view": round(plain_acc, 4),
            "accuracy_with_mirror_only": round(mirror_acc, 4),
            "macro_f1": round(report.macro_f1, 4),
            "recall": {k: round(v, 4) for k, v in report.recall.items()},
            "precision": {k: round(v, 4) for k, v in report.precision.items()},
            "measured_with": "python -m training.evaluate on this graph",
            "onnx_parity": checks,
            "int8_quantisation": int8,
        },
        "weights": weights,
        "test_time_views": {"mirror": True, "crop_scales": list(crop_scales), "views_per_face": views},
        "members": members,
        "trained_on": "2 CPU cores, bf16 autocast",
        "provenance": "trained on FER-2013 Training (28,709 images) by training/train.py, then training/export.py",
        "license": "model weights: project's own; training data FER-2013 (research use)",
        "exported": datetime.date.today().isoformat(),
        "opset": OPSET,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    store_compressed(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, nargs="+", default=[Path("runs/xception")], help="one or more runs")
    parser.add_argument(
        "--crop-scales", type=float, nargs="*", default=[], help="extra views, e.g. 0.9 1.1 (each one more pass)"
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--version", help="defaults to one past the highest in the store")
    parser.add_argument("--name", default=MODEL_NAME, help="the model's name in the store, e.g. emotion-fast")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="store float16 weights, untried int8")
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = export_model(args.run, args.data, args.store, args.version, args.crop_scales, args.name, args.int8)
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
