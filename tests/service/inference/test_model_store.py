import json
import shutil
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT, Settings
from service.inference.model_store import (
    ModelStoreError,
    available_versions,
    graph_path,
    read_graph,
    resolve,
    store_compressed,
)
from service.inference.prepare import bytes_literal

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def copy_model(settings: Settings, store: Path, version: str) -> Path:
    source = resolve(settings.model_store, settings.default_emotion_model)
    target = store / "emotion" / version
    shutil.copytree(source.onnx_path.parent, target)
    return target


def test_highest_version_wins_and_versions_sort_numerically(settings: Settings, tmp_path: Path) -> None:
    for version in ("2", "10"):
        copy_model(settings, tmp_path, version)
    assert available_versions(tmp_path, "emotion") == ["2", "10"]
    assert resolve(tmp_path, "emotion").version == "10"
    assert resolve(tmp_path, "emotion", "2").version == "2"


def test_checksum_mismatch_is_refused(settings: Settings, tmp_path: Path) -> None:
    folder = copy_model(settings, tmp_path, "1")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["sha256"] = "0" * 64
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelStoreError, match="sha256"):
        resolve(tmp_path, "emotion")


def test_a_graph_reads_the_same_plain_or_compressed(settings: Settings, tmp_path: Path) -> None:
    folder = copy_model(settings, tmp_path, "1")
    compressed = read_graph(graph_path(folder))
    (folder / "model.onnx").write_bytes(compressed)
    graph_path(folder).unlink()
    assert resolve(tmp_path, "emotion").onnx_path.name == "model.onnx"
    stored = resolve(settings.model_store, settings.default_emotion_model).onnx_path
    assert store_compressed(folder).read_bytes() == stored.read_bytes()  # reproducible to the byte
    assert resolve(tmp_path, "emotion").onnx_path.name == "model.onnx.gz"


def test_every_tracked_model_file_is_under_10_mb() -> None:
    files = [path for path in (PROJECT_ROOT / "model_store").rglob("*") if path.is_file()]
    assert len(files) >= 8 and all(path.stat().st_size < 10_000_000 for path in files)


def test_missing_model_or_version(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="no versions"):
        resolve(tmp_path, "emotion")
    copy_model(settings, tmp_path, "1")
    with pytest.raises(ModelStoreError, match="no version '7'"):
        resolve(tmp_path, "emotion", "7")


def test_bytes_literal_is_read_without_running_the_module() -> None:
    source = "import os\nos.system('exit 1')\nOTHER = b'x'\nWEIGHTS = b'\\x08\\x06onnx'\n"
    assert bytes_literal(source, "WEIGHTS") == b"\x08\x06onnx"
    with pytest.raises(ValueError):
        bytes_literal("WEIGHTS = 'text'\n", "WEIGHTS")


def test_prepared_detector_matches_its_metadata(settings: Settings) -> None:
    """`make test` runs the prepare step first; what it wrote must verify against the committed sha256."""
    model = resolve(settings.model_store, settings.detector_model)
    assert model.sha256 == "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
