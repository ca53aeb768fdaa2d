import csv
from pathlib import Path

import cv2
import numpy as np
import torch

from tests.conftest import DATA_DIR
from training.data import CLASSES, Augment, load_csv, load_folder, load_split


def write_csv(path: Path, rows: list[tuple[int, np.ndarray, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for label, image, usage in rows:
            writer.writerow([label, " ".join(map(str, image.ravel())), usage])


def test_folder_layout_matches_the_published_counts() -> None:
    data = load_folder(DATA_DIR / "test")
    assert len(data) == 3589
    assert data.images.shape == (3589, 48, 48) and data.images.dtype == torch.uint8
    assert data.class_counts().tolist() == [467, 56, 496, 895, 653, 415, 607]


def test_csv_and_folder_forms_load_the_same_faces(tmp_path: Path) -> None:
    rows = []
    for label, name in enumerate(CLASSES):
        for i, path in enumerate(sorted((DATA_DIR / "test" / name).glob("*.jpg"))[:4]):
            rows.append((label, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), "PublicTest" if i % 2 else "Training"))
    csv_path = tmp_path / "fer2013.csv"
    write_csv(csv_path, rows)

    public = load_csv(csv_path, "PublicTest")
    expected = [(label, image) for label, image, usage in rows if usage == "PublicTest"]
    assert public.labels.tolist() == [label for label, _ in expected]
    assert np.array_equal(public.images.numpy(), np.stack([image for _, image in expected]))
    assert len(load_split(csv_path, "train")) == len(rows) - len(expected)


def test_load_split_accepts_a_root_or_a_split_folder() -> None:
    assert len(load_split(DATA_DIR, "test")) == len(load_split(DATA_DIR / "test", "test")) == 3589


def test_augment_keeps_shape_and_range_and_changes_pixels() -> None:
    faces = load_folder(DATA_DIR / "test").images[:64].unsqueeze(1).float() / 255
    out = Augment()(faces, torch.Generator().manual_seed(0))
    assert out.shape == faces.shape
    assert out.min() >= 0 and out.max() <= 1
    assert (out - faces).abs().mean() > 0.02


def test_augment_flip_alone_mirrors_exactly() -> None:
    faces = load_folder(DATA_DIR / "test").images[:32].unsqueeze(1).float() / 255
    flip_only = Augment(max_rotation_deg=0, max_scale=0, max_shift=0, erase_prob=0)
    out = flip_only(faces, torch.Generator().manual_seed(1))
    mirrored = torch.flip(faces, dims=[3])
    per_image = [
        torch.allclose(o, f, atol=1e-5) or torch.allclose(o, m, atol=1e-5) for o, f, m in zip(out, faces, mirrored)
    ]
    assert all(per_image)
