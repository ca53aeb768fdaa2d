import json
from pathlib import Path

import numpy as np
import pytest

from service.classifier import EmotionClassifier
from service.model_store import resolve
from tests.conftest import DATA_DIR
from training.data import load_split
from training.export import export_model, export_onnx, load_checkpoint, parity
from training.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-run")
    train(TrainConfig(data=str(DATA_DIR), out=str(out), epochs=1, train_limit=800, val_limit=200))
    return out


def test_onnx_matches_pytorch(run: Path, tmp_path: Path) -> None:
    net, _ = load_checkpoint(run)
    path = tmp_path / "model.onnx"
    export_onnx(net, path, flip_average=True)
    checks = parity(net, path, load_split(DATA_DIR, "test").images.numpy()[:300])
    assert checks["argmax_agreement"] == 1.0
    assert checks["max_abs_difference"] < 1e-4


def test_export_writes_a_servable_versioned_model(run: Path, tmp_path: Path) -> None:
    folder = export_model(run, DATA_DIR, tmp_path, version=None)
    assert folder == tmp_path / "emotion" / "1"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["opset"] >= 17 and metadata["classes"][1] == "disgust"
    assert 0 < metadata["metrics"]["accuracy"] <= 1
    assert len(metadata["preprocessing"]["alignment_template"]["landmarks"]) == 5

    model = resolve(tmp_path, "emotion")  # checksum verified against the metadata
    probs = EmotionClassifier(model)(load_split(DATA_DIR, "test").images.numpy()[:16])
    assert probs.shape == (16, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
