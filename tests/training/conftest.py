"""Short real training runs and their exports, shared by the training tests (each made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA_DIR
from training.export import export_model
from training.train import TrainConfig, train


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two one-epoch runs of different designs (one with depthwise convolutions), the shape of an ensemble."""
    outs = []
    for arch, width in (("xception", 64), ("vgg", 32)):
        out = tmp_path_factory.mktemp(f"export-{arch}")
        train(
            TrainConfig(
                data=str(DATA_DIR), out=str(out), arch=arch, width=width, epochs=1, train_limit=800, val_limit=200
            )
        )
        outs.append(out)
    return outs


@pytest.fixture(scope="session")
def float16_export(quick_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two runs exported as one graph with float16 weights and the mirror and crop views."""
    store = tmp_path_factory.mktemp("store")
    return export_model(quick_runs, DATA_DIR, store, version="1", crop_scales=[0.9, 1.1], int8=False)
