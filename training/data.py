"""FER-2013 loading and on-batch augmentation.

The whole data set (about 32k 48x48 images) fits in memory as one uint8 tensor, so it is loaded
once and augmented a batch at a time with tensor ops: far cheaper on two CPU cores than a
per-image DataLoader pipeline.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# FER-2013's own label order; the Kaggle folder layout uses the same names.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE = 48

# Folder-layout split names and the matching `Usage` values of the original csv.
SPLIT_USAGE = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 [N, 48, 48] and labels as int64 [N], both in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=len(CLASSES))


def sample(count: int, limit: int, generator: torch.Generator | None) -> torch.Tensor | None:
    """The indices of a random `limit` of `count` items (None: keep them all)."""
    if not limit or limit >= count:
        return None
    return torch.randperm(count, generator=generator)[:limit]


def load_folder(root: Path, limit: int = 0, generator: torch.Generator | None = None) -> Dataset:
    """Read `<root>/<emotion>/*.{jpg,png}` (the Kaggle layout), decoding each as grayscale; with
    `limit`, only a random `limit` of the files are decoded."""
    files = [
        (path, label)
        for label, name in enumerate(CLASSES)
        for path in sorted((root / name).glob("*"))
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}
    ]
    if not files:
        raise ValueError(f"no images under {root}/<emotion>/")
    keep = sample(len(files), limit, generator)
    if keep is not None:
        files = [files[i] for i in keep]
    images = []
    for path, _ in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot decode {path}")
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
            image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        images.append(image)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Dataset(torch.from_numpy(np.stack(images)), labels)


def load_csv(path: Path, usage: str) -> Dataset:
    """Read the original `fer2013.csv` (columns emotion, pixels, Usage), keeping one usage."""
    images, labels = [], []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Usage"] != usage:
                continue
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            images.append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
            labels.append(int(row["emotion"]))
    if not images:
        raise ValueError(f"no rows with Usage={usage} in {path}")
    return Dataset(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64))


def load_split(path: Path, split: str, limit: int = 0, generator: torch.Generator | None = None) -> Dataset:
    """Load one split from either form: a csv file, a data root holding `<split>/`, or the split folder itself.

    With `limit`, a random `limit` of its faces (drawn with `generator`), the same ones from either form."""
    if path.is_file():
        data = load_csv(path, SPLIT_USAGE[split])
        keep = sample(len(data), limit, generator)
        return data if keep is None else Dataset(data.images[keep], data.labels[keep])
    return load_folder(path / split if (path / split).is_dir() else path, limit, generator)


@dataclass(frozen=True)
class Augment:
    """Random geometry and occlusion applied to whole batches; each knob maps to one transform."""

    flip: bool = True
    max_rotation_deg: float = 12.0
    max_scale: float = 0.10  # zoom in or out by up to this fraction
    max_shift: float = 0.10  # translate by up to this fraction of the side
    erase_prob: float = 0.5
    erase_max_area: float = 0.25

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Take float images [B, 1, H, W] in [0, 1] and return augmented copies of the same shape."""
        batch = images.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(batch, generator=generator) * (high - low) + low

        angle = uniform(-1, 1) * math.radians(self.max_rotation_deg)
        scale = 1 + uniform(-self.max_scale, self.max_scale)
        mirror = torch.ones(batch)
        if self.flip:
            mirror = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
        theta[:, 0, 2] = uniform(-1, 1) * 2 * self.max_shift
        theta[:, 1, 2] = uniform(-1, 1) * 2 * self.max_shift
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self._erase(out, generator)

    def _erase(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Blank one random rectangle per chosen image, so no single facial region is relied on."""
        batch, _, height, width = images.shape
        chosen = torch.rand(batch, generator=generator) < self.erase_prob
        area = torch.rand(batch, generator=generator) * (self.erase_max_area - 0.02) + 0.02
        aspect = torch.exp(torch.rand(batch, generator=generator) * 2.2 - 1.1)
        mask = random_boxes(area, aspect, height, width, generator) & chosen.view(-1, 1, 1)
        fill = torch.rand(batch, 1, 1, generator=generator).expand(-1, height, width)
        return torch.where(mask.unsqueeze(1), fill.unsqueeze(1), images)


def random_boxes(
    area: torch.Tensor, aspect: torch.Tensor, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """One rectangle per image, of the given area fraction and aspect, placed at random inside it: bool [B, H, W]."""
    batch = len(area)
    h = (torch.sqrt(area * aspect) * height).clamp(1, height).long()
    w = (torch.sqrt(area / aspect) * width).clamp(1, width).long()
    top = (torch.rand(batch, generator=generator) * (height - h + 1)).long()
    left = (torch.rand(batch, generator=generator) * (width - w + 1)).long()
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    return (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + h).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + w).view(-1, 1, 1))
    )


@dataclass(frozen=True)
class Mix:
    """Blend each chosen face with another face of the batch, and their labels in the same proportion.

    Half the blends are mixup (the whole images cross-faded), half CutMix (a box of the other face
    pasted in). Both discourage a network from memorising single training faces, which
    FER-2013's noisy labels invite: without them a long run ends far more accurate on its training
    faces than on PublicTest.
    """

    prob: float = 0.5  # fraction of faces blended
    alpha: float = 1.0  # blend proportions follow Beta(alpha, alpha)

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the blended images [B, 1, H, W], both labels of each, and the share of the first."""
        batch, _, height, width = images.shape
        if self.prob == 0:  # draw nothing, so runs without blending replay exactly as before it existed
            return images, labels, labels, torch.ones(batch)
        partner = torch.randperm(batch, generator=generator)
        seed = int(torch.randint(2**31, (1,), generator=generator))
        lam = torch.from_numpy(np.random.default_rng(seed).beta(self.alpha, self.alpha, batch)).float()
        chosen = torch.rand(batch, generator=generator) < self.prob
        cutmix = torch.rand(batch, generator=generator) < 0.5

        box = random_boxes(1 - lam, torch.ones(batch), height, width, generator).unsqueeze(1)
        pasted = torch.where(box, images[partner], images)
        faded = lam.view(-1, 1, 1, 1) * images + (1 - lam.view(-1, 1, 1, 1)) * images[partner]
        # The box is rounded to whole pixels, so its share is measured, not taken from lam.
        lam = torch.where(cutmix, 1 - box.flatten(1).float().mean(1), lam)
        lam = torch.where(chosen, lam, torch.ones(batch))
        mixed = torch.where(cutmix.view(-1, 1, 1, 1), pasted, faded)
        return torch.where(chosen.view(-1, 1, 1, 1), mixed, images), labels, labels[partner], lam
