"""Put onnxruntime-web into the model store: the runtime that runs our own detector and emotion-fast
graphs in a participant's browser, served by the service itself (nothing is loaded from a CDN).

The npm package's tarball is fetched from the registry at build time (`make prepare`, the image build),
checked against the sha256 pinned in the committed metadata, and only the three files the page needs
are unpacked, each checked again. The 15 MB WebAssembly binary is kept gzip-compressed (4 MB), which is
also how it is sent. Idempotent: files that already match are left alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import ssl
import tarfile
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

RUNTIME_NAME, RUNTIME_VERSION = "onnxruntime-web", "1.31.1"


COMPRESSED = ".wasm"  # kept and sent gzip-compressed


def runtime_folder(store: Path) -> Path:
    return store / RUNTIME_NAME / RUNTIME_VERSION


def stored_name(name: str) -> str:
    return f"{name}.gz" if name.endswith(COMPRESSED) else name


def read_runtime_file(folder: Path, name: str) -> bytes:
    """A runtime file's bytes as they are sent (the WebAssembly binary gzip-compressed)."""
    return (folder / stored_name(name)).read_bytes()


def verified(folder: Path, name: str, digest: str) -> bool:
    path = folder / stored_name(name)
    if not path.is_file():
        return False
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return hashlib.sha256(data).hexdigest() == digest


def certificates(bundle: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=bundle) if bundle else True


def prepare_browser_runtime(store: Path) -> Path:
    folder = runtime_folder(store)
    metadata = json.loads((folder / "metadata.json").read_text())
    files: dict[str, str] = metadata["files"]
    if all(verified(folder, name, digest) for name, digest in files.items()):
        log.info("%s already holds the verified browser runtime", folder)
        return folder
    # Behind a TLS-inspecting proxy (the image build), the CA bundle pip is given serves this registry too.
    bundle = os.environ.get("PIP_CERT")
    answer = httpx.get(metadata["source"], follow_redirects=True, timeout=120, verify=certificates(bundle))
    answer.raise_for_status()
    if (actual := hashlib.sha256(answer.content).hexdigest()) != metadata["sha256"]:
        raise RuntimeError(f"{metadata['source']} has sha256 {actual}, expected {metadata['sha256']}")
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        for name, digest in files.items():
            data = archive.extractfile(f"package/dist/{name}").read()
            if (actual := hashlib.sha256(data).hexdigest()) != digest:
                raise RuntimeError(f"{name} has sha256 {actual}, expected {digest}")
            stored = gzip.compress(data, 9, mtime=0) if name.endswith(COMPRESSED) else data
            partial = folder / f"{name}.partial"
            partial.write_bytes(stored)
            partial.replace(folder / stored_name(name))
            log.info("wrote %s (%d bytes)", folder / stored_name(name), len(stored))
    return folder
