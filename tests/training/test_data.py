import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers.data import fer2013_dir
from training.data import CLASSES, Augment, Mix, load_csv, load_folder, load_split

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def write_csv(path: Path, rows: list[tuple[int, np.ndarray, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for label, image, usage in rows:
            writer.writerow([label, " ".join(map(str, image.ravel())), usage])


def test_folder_layout_matches_the_published_counts() -> None:
    data = load_folder(fer2013_dir() / "test")
    assert len(data) == 3589
    assert data.images.shape == (3589, 48, 48) and data.images.dtype == torch.uint8
    assert data.class_counts().tolist() == [467, 56, 496, 895, 653, 415, 607]


def test_csv_and_folder_forms_load_the_same_faces(tmp_path: Path) -> None:
    rows = []
    for label, name in enumerate(CLASSES):
        for i, path in enumerate(sorted((fer2013_dir() / "test" / name).glob("*.jpg"))[:4]):
            rows.append((label, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), "PublicTest" if i % 2 else "Training"))
    csv_path = tmp_path / "fer2013.csv"
    write_csv(csv_path, rows)

    public = load_csv(csv_path, "PublicTest")
    expected = [(label, image) for label, image, usage in rows if usage == "PublicTest"]
    assert public.labels.tolist() == [label for label, _ in expected]
    assert np.array_equal(public.images.numpy(), np.stack([image for _, image in expected]))
    assert len(load_split(csv_path, "train")) == len(rows) - len(expected)


def test_load_split_accepts_a_root_or_a_split_folder() -> None:
    assert len(load_split(fer2013_dir(), "test")) == len(load_split(fer2013_dir() / "test", "test")) == 3589


def test_a_limited_split_decodes_only_a_random_sample_of_the_whole() -> None:
    whole = load_split(fer2013_dir(), "test")
    sampled = load_split(fer2013_dir(), "test", limit=50, generator=torch.Generator().manual_seed(3))
    keep = torch.randperm(len(whole), generator=torch.Generator().manual_seed(3))[:50]
    assert torch.equal(sampled.images, whole.images[keep]) and torch.equal(sampled.labels, whole.labels[keep])
    assert len(sampled.class_counts().nonzero()) > 3  # drawn across the classes


def test_augment_keeps_shape_and_range_and_changes_pixels() -> None:
    faces = load_folder(fer2013_dir() / "test").images[:64].unsqueeze(1).float() / 255
    out = Augment()(faces, torch.Generator().manual_seed(0))
    assert out.shape == faces.shape
    assert out.min() >= 0 and out.max() <= 1
    assert (out - faces).abs().mean() > 0.02


def test_augment_flip_alone_mirrors_exactly() -> None:
    faces = load_folder(fer2013_dir() / "test").images[:32].unsqueeze(1).float() / 255
    flip_only = Augment(max_rotation_deg=0, max_scale=0, max_shift=0, erase_prob=0)
    out = flip_only(faces, torch.Generator().manual_seed(1))
    mirrored = torch.flip(faces, dims=[3])
    per_image = [
        torch.allclose(o, f, atol=1e-5) or torch.allclose(o, m, atol=1e-5) for o, f, m in zip(out, faces, mirrored)
    ]
    assert all(per_image)


def is_blend_of(blended: torch.Tensor, face: torch.Tensor, partner: torch.Tensor, share: float) -> bool:
    """True if `blended` keeps `share` of `face` and takes the rest from `partner`, faded or pasted."""
    faded = share * face + (1 - share) * partner
    if torch.allclose(blended, faded, atol=1e-5):
        return True
    from_partner = (blended - partner).abs() < 1e-6
    from_face = (blended - face).abs() < 1e-6
    pasted_share = (from_partner & ~from_face).float().mean()
    return bool((from_partner | from_face).all()) and abs(float(pasted_share) - (1 - share)) < 0.05


def test_mix_blends_each_face_with_a_partner_in_the_stated_share() -> None:
    data = load_folder(fer2013_dir() / "test")
    faces, labels = data.images[::100].unsqueeze(1).float() / 255, data.labels[::100]
    mixed, first, second, share = Mix(prob=1.0)(faces, labels, torch.Generator().manual_seed(0))
    assert mixed.shape == faces.shape and torch.equal(first, labels)
    for i in range(len(faces)):
        partners = [j for j in range(len(faces)) if is_blend_of(mixed[i], faces[i], faces[j], float(share[i]))]
        assert partners, f"face {i} is no blend"
        assert second[i] in labels[partners]
    assert 0.2 < share.mean() < 0.8


def test_mix_can_be_off_and_then_changes_nothing() -> None:
    faces = load_folder(fer2013_dir() / "test").images[:16].unsqueeze(1).float() / 255
    labels = torch.arange(16) % 7
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    mixed, first, second, share = Mix(prob=0.0)(faces, labels, generator)
    assert torch.equal(mixed, faces) and torch.equal(first, labels) and torch.equal(second, labels)
    assert torch.equal(share, torch.ones(16))
    assert torch.equal(generator.get_state(), state)
