"""Classification metrics and plots shared by training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training runs headless
import matplotlib.pyplot as plt
import numpy as np

from training.data import CLASSES


@dataclass(frozen=True)
class Report:
    accuracy: float
    macro_f1: float
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    def as_dict(self) -> dict:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "precision": {k: round(v, 4) for k, v in self.precision.items()},
            "recall": {k: round(v, 4) for k, v in self.recall.items()},
            "confusion": self.confusion,
        }


def classification_report(labels: np.ndarray, predictions: np.ndarray) -> Report:
    n = len(CLASSES)
    confusion = np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)
    true_positive = np.diag(confusion).astype(float)
    precision = true_positive / np.maximum(confusion.sum(axis=0), 1)
    recall = true_positive / np.maximum(confusion.sum(axis=1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return Report(
        accuracy=float(true_positive.sum() / confusion.sum()),
        macro_f1=float(f1.mean()),
        precision=dict(zip(CLASSES, precision.tolist())),
        recall=dict(zip(CLASSES, recall.tolist())),
        confusion=confusion.tolist(),
    )


def plot_confusion(report: Report, path: Path, title: str) -> None:
    """Row-normalised confusion matrix, so the small disgust class stays readable."""
    counts = np.array(report.confusion)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=7, color=color)
    ax.set_title(f"{title}\naccuracy {report.accuracy:.2%}, macro-F1 {report.macro_f1:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(rows: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch from the training log."""
    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, [r["train_loss"] for r in rows], label="train")
    left.plot(epochs, [r["val_loss"] for r in rows], label="PublicTest")
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy")
    left.legend()
    right.plot(epochs, [r["train_acc"] for r in rows], label="train (augmented)")
    right.plot(epochs, [r["val_acc"] for r in rows], label="PublicTest")
    right.plot(epochs, [r["val_acc_flip"] for r in rows], label="PublicTest, flip-averaged")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
