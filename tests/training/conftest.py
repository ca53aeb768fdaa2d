"""Short real training runs and their exports, shared by the training tests (each made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import fer2013_dir
from training.data import CLASSES
from training.export import export_model
from training.train import TrainConfig, train


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two one-epoch runs of different designs (one with depthwise convolutions), the shape of an ensemble,
    at half the shipped widths: a quarter of the arithmetic for every export and evaluation of them."""
    outs = []
    for arch, width in (("xception", 32), ("vgg", 16)):
        out = tmp_path_factory.mktemp(f"export-{arch}")
        train(
            TrainConfig(
                data=str(fer2013_dir()), out=str(out), arch=arch, width=width, epochs=1, train_limit=400, val_limit=100
            )
        )
        outs.append(out)
    return outs


def linked_fer(root: Path, test_per_class: int, train_per_class: int) -> Path:
    """FER-2013 with the first faces of each class (links, not copies)."""
    for split, count in (("test", test_per_class), ("train", train_per_class)):
        for emotion in CLASSES:
            folder = root / split / emotion
            folder.mkdir(parents=True)
            for face in sorted((fer2013_dir() / split / emotion).glob("*.jpg"))[:count]:
                (folder / face.name).symlink_to(face)
    return root


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 faces a class in PublicTest and 100 in Training: enough for a calibration to be measured on
    held-out halves; exports and calibrations measure every variant on PublicTest and calibrate int8
    on Training faces, which are the slow parts of testing them."""
    return linked_fer(tmp_path_factory.mktemp("fer-small"), 60, 100)


@pytest.fixture(scope="session")
def export_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 faces a class in PublicTest: what an export's parity and accuracy checks need to run."""
    return linked_fer(tmp_path_factory.mktemp("fer-export"), 20, 100)


@pytest.fixture(scope="session")
def float16_export(quick_runs: list[Path], export_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two runs exported as one graph with float16 weights and the mirror and a crop view."""
    store = tmp_path_factory.mktemp("store")
    return export_model(quick_runs, export_data, store, version="1", crop_scales=[0.9], int8=False)
