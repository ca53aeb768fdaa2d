"""Do the face mesh's blendshapes add to the emotion model? A small head on the model's log-probabilities
and the 52 blendshapes, against the same head on the log-probabilities alone (which only refits the
model's own output), by 10-fold cross-validation on PublicTest.

    python -m training.fusion [--data ../shared/data/fer2013] [--model emotion] [--out reports/fusion.json]
        [--features reports/fusion-features.npz]

Each PublicTest face is placed in a scene and found by the detector, as the service finds it; faces it
misses keep the model's own answer in every arm. The result, either way, is recorded in the model card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from service.config import get_settings
from service.inference.classifier import EmotionClassifier
from service.inference.loading import load_detector, load_face_mesh
from service.inference.model_store import resolve
from training.calibrate import expected_calibration_error
from training.scenes import place_faces

FOLDS, SEED, WEIGHT_DECAY = 10, 20261207, 1e-3


def public_test(data: Path, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((data / "test" / name).glob("*.jpg")):
            images.append(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
            labels.append(label)
    return np.stack(images), np.array(labels)


def blendshapes(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 52] blendshapes of each face placed in a scene, and [N] whether the detector found it."""
    settings = get_settings()
    detector, mesh = load_detector(settings)[1], load_face_mesh(settings)
    features, found = np.zeros((len(images), len(mesh.names))), np.zeros(len(images), bool)
    for i, face in enumerate(images):
        scene = place_faces([face], 240, 320, 150, seed=i).image
        faces = detector.detect(scene)
        if len(faces):
            features[i] = list(mesh.describe(scene, faces.boxes[0], faces.landmarks[0][:2]).blendshapes.values())
            found[i] = True
    return features, found


def fitted_head(x: np.ndarray, y: np.ndarray, classes: int) -> torch.nn.Linear:
    """Multinomial logistic regression, L2-regularised, fitted to convergence with L-BFGS."""
    torch.manual_seed(SEED)
    head = torch.nn.Linear(x.shape[1], classes).double()
    inputs, targets = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y)
    optimiser = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(head(inputs), targets) + WEIGHT_DECAY * head.weight.pow(2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return head


def cross_validated(x: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    """Out-of-fold probabilities [N, classes], features standardised on each training fold."""
    folds = np.random.default_rng(SEED).permutation(len(y)) % FOLDS
    out = np.zeros((len(y), classes))
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        head = fitted_head((x[train] - mean) / std, y[train], classes)
        with torch.no_grad():
            out[test] = torch.softmax(head(torch.from_numpy(((x[test] - mean) / std).astype(np.float64))), 1).numpy()
    return out


def scored(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "accuracy": round(float((probabilities.argmax(1) == labels).mean()), 4),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/fer2013", type=Path)
    parser.add_argument("--model", default="emotion")
    parser.add_argument("--out", default="reports/fusion.json", type=Path)
    parser.add_argument("--features", default="reports/fusion-features.npz", type=Path, help="computed once, reused")
    args = parser.parse_args()

    stored = resolve(get_settings().model_store, args.model)
    classifier = EmotionClassifier(stored)
    if args.features.is_file():
        saved = np.load(args.features)
        model, shapes, found, labels = saved["model"], saved["shapes"], saved["found"], saved["labels"]
    else:
        images, labels = public_test(args.data, classifier.classes)
        model = np.concatenate([classifier(images[i : i + 256]) for i in range(0, len(images), 256)])
        shapes, found = blendshapes(images)
        args.features.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.features, model=model, shapes=shapes, found=found, labels=labels)
    log_p = np.log(np.clip(model, 1e-7, 1))
    classes = len(classifier.classes)
    arms = {"served": model}
    for name, features in (("refit", log_p), ("fusion", np.hstack([log_p, shapes]))):
        fitted = model.copy()
        fitted[found] = cross_validated(features[found], labels[found], classes)
        arms[name] = fitted
    result = {
        "model": f"{stored.name}/{stored.version}",
        "faces": len(labels),
        "found": int(found.sum()),
        "folds": FOLDS,
        **{name: scored(p, labels) for name, p in arms.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
