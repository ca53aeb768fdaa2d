import json
from pathlib import Path

import numpy as np
import pytest
import torch

from service.inference.classifier import EmotionClassifier
from service.inference.model_store import resolve
from tests.helpers.data import fer2013_dir
from training.data import load_split
from training.evaluate import onnx_probabilities
from training.export import (
    agreement,
    export_model,
    export_onnx,
    load_checkpoint,
    pytorch_probabilities,
    store_weights_as_float16,
)
from training.model import ServingModel


@pytest.mark.parametrize(
    ("members", "crop_scales"), [(1, ()), (2, ()), (2, (0.9, 1.1))], ids=["single", "ensemble", "ensemble-crops"]
)
def test_onnx_matches_pytorch(quick_runs: list[Path], members: int, crop_scales: tuple, tmp_path: Path) -> None:
    serving = ServingModel([load_checkpoint(run)[0] for run in quick_runs[:members]], crop_scales=crop_scales).eval()
    path = tmp_path / "model.onnx"
    export_onnx(serving, path)
    faces = load_split(fer2013_dir(), "test").images.numpy()[:100]
    checks = agreement(pytorch_probabilities(serving, faces), onnx_probabilities(path, faces))
    assert checks["argmax_agreement"] == 1.0
    assert checks["max_abs_difference"] < 1e-4


def test_float16_weights_halve_the_file_and_keep_the_answers(quick_runs: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(ServingModel([load_checkpoint(run)[0] for run in quick_runs]).eval(), path)
    faces = load_split(fer2013_dir(), "test").images.numpy()[:300]
    float32_size, float32_probs = path.stat().st_size, onnx_probabilities(path, faces)
    store_weights_as_float16(path)
    assert path.stat().st_size < 0.6 * float32_size
    checks = agreement(float32_probs, onnx_probabilities(path, faces))
    assert checks["argmax_agreement"] >= 0.99
    assert checks["max_abs_difference"] < 1e-2


def test_export_writes_a_servable_versioned_model(quick_runs: list[Path], export_data: Path, tmp_path: Path) -> None:
    """One member, int8 tried: the ensemble with crop views is exported by the float16_export fixture."""
    folder = export_model(quick_runs[:1], export_data, tmp_path, version=None)
    assert folder == tmp_path / "emotion" / "1"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["opset"] >= 17 and metadata["classes"][1] == "disgust"
    assert 0 < metadata["metrics"]["accuracy"] <= 1
    assert len(metadata["preprocessing"]["alignment_template"]["landmarks"]) == 5
    assert [m["architecture"] for m in metadata["members"]] == ["xception"]
    assert metadata["test_time_views"] == {"mirror": True, "crop_scales": [], "views_per_face": 2}
    assert metadata["weights"]["stored_as"] in {"float16", "int8"}
    assert metadata["metrics"]["int8_quantisation"]["crops_per_second_int8"] > 0

    model = resolve(tmp_path, "emotion")  # checksum verified against the metadata
    probs = EmotionClassifier(model)(load_split(fer2013_dir(), "test").images.numpy()[:16])
    assert probs.shape == (16, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_crop_views_sample_the_face_centre_and_mirror_it() -> None:
    """A 0.9 crop of a horizontal ramp is a steeper ramp around the same centre; the mirror reverses it."""
    ramp = torch.linspace(0, 1, 48).expand(1, 1, 48, 48)
    identity, tighter, mirrored, mirrored_tighter = ServingModel([], crop_scales=[0.9]).views(ramp)
    assert torch.equal(identity, ramp)
    assert tighter[0, 0, 0, 0] > ramp[0, 0, 0, 0] and tighter[0, 0, 0, -1] < ramp[0, 0, 0, -1]
    torch.testing.assert_close(tighter.mean(), ramp.mean())
    torch.testing.assert_close(mirrored, ramp.flip(3))
    torch.testing.assert_close(mirrored_tighter, tighter.flip(3))
