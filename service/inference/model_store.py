"""The versioned model store: `<store>/<name>/<version>/model.onnx.gz` beside its `metadata.json`.

Graphs are kept gzip-compressed in the repository (an int8 ensemble shrinks by a fifth); a graph
prepared on the machine, like the face detector, may be a plain `model.onnx`. Serving refuses a
model whose graph does not match the sha256 its metadata records (of the uncompressed graph), so
what is reported at /v1/models is exactly what runs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort


class ModelStoreError(RuntimeError):
    """The store lacks the requested model, or its files disagree with their metadata."""


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: str
    onnx_path: Path
    metadata: dict

    @property
    def sha256(self) -> str:
        return self.metadata["sha256"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def graph_path(folder: Path) -> Path:
    """The version's graph file, compressed or plain."""
    compressed = folder / "model.onnx.gz"
    return compressed if compressed.is_file() else folder / "model.onnx"


def read_graph(path: Path) -> bytes:
    """The serialized ONNX graph, uncompressed."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def graph_sha256(path: Path) -> str:
    return hashlib.sha256(read_graph(path)).hexdigest()


def store_compressed(folder: Path) -> Path:
    """Replace the version's plain `model.onnx` by `model.onnx.gz` (byte-for-byte reproducible)."""
    plain, compressed = folder / "model.onnx", folder / "model.onnx.gz"
    compressed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=9, mtime=0))
    plain.unlink()
    return compressed


def available_versions(store: Path, name: str) -> list[str]:
    """Versions that hold metadata, in ascending numeric order."""
    folder = store / name
    if not folder.is_dir():
        return []
    versions = [p.name for p in folder.iterdir() if p.name.isdigit() and (p / "metadata.json").is_file()]
    return sorted(versions, key=int)


def resolve(store: Path, name: str, version: str | None = None) -> StoredModel:
    """Find a model (the highest version when none is given) and verify its checksum."""
    versions = available_versions(store, name)
    if not versions:
        raise ModelStoreError(f"no versions of model {name!r} under {store}")
    chosen = version or versions[-1]
    if chosen not in versions:
        raise ModelStoreError(f"model {name!r} has no version {chosen!r} (have {', '.join(versions)})")
    folder = store / name / chosen
    metadata = json.loads((folder / "metadata.json").read_text())
    onnx_path = graph_path(folder)
    if not onnx_path.is_file():
        raise ModelStoreError(f"{onnx_path} is missing; run `python -m service.inference.prepare`")
    actual = graph_sha256(onnx_path)
    if actual != metadata["sha256"]:
        raise ModelStoreError(f"{onnx_path} has sha256 {actual}, metadata says {metadata['sha256']}")
    return StoredModel(name=name, version=chosen, onnx_path=onnx_path, metadata=metadata)


def onnxruntime_session(onnx_path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with full graph optimisation; `threads` 0 means one per core."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Memory patterns are planned and kept per input shape; with a batch size that changes from
    # call to call they piled up (RSS +70 MB over 600 calls of mixed batches, at equal speed off).
    options.enable_mem_pattern = False
    # Idle intra-op threads spinning for work take CPU from detection running beside the model.
    # Three alternating runs of the service on 2 cores, off against on: 23.6 against 21.1 one-face
    # images/s at concurrency 16, p50 53 against 60 ms at concurrency 1.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # On CPUs without VNNI (AVX2 alone), int8 convolutions on signed weights add pairs of products in 16
    # bits and saturate: emotion/7 scored 71.30% instead of 71.86% on such a host. This makes
    # onnxruntime shift those weights to unsigned first on such CPUs, which computes exactly.
    options.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(read_graph(onnx_path), options, providers=["CPUExecutionProvider"])
