"""Run the service's pipeline on local files, without a server.

    python -m service.cli predict PATH... [--format jsonl|csv] [--output FILE] [--annotate DIR]

PATH is an image or a folder (searched recursively). Writes one row per face: the file, the face's
box, detection score, the seven probabilities and the dominant emotion. Files that are not usable
images are reported on stderr and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from service.annotate import draw_faces, encode
from service.config import get_settings
from service.errors import ImageRejected
from service.metrics import Metrics
from service.results import image_result
from service.runtime import load_runtime

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def image_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            yield path


def face_rows(file: str, result: dict) -> Iterator[dict]:
    for index, face in enumerate(result["faces"]):
        yield {
            "file": file,
            "face": index,
            **face["box"],
            "detection_score": face["detection_score"],
            **face["emotions"],
            "dominant_emotion": face["dominant_emotion"],
        }


def progress(done: int, total: int, stream: TextIO = sys.stderr) -> None:
    if stream.isatty():
        filled = 30 * done // max(total, 1)
        stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        stream.flush()


def predict(paths: list[Path], out: TextIO, fmt: str, annotate_dir: Path | None) -> int:
    runtime = load_runtime(get_settings(), Metrics())
    pipeline = runtime.pipeline
    classes = pipeline.classifier.classes
    files = list(image_files(paths))
    columns = ["file", "face", "x", "y", "width", "height", "detection_score", *classes, "dominant_emotion"]
    writer = csv.DictWriter(out, fieldnames=columns) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    failures = 0
    for done, path in enumerate(files, start=1):
        try:
            analysed = pipeline.analyse(path.read_bytes())
        except (ImageRejected, OSError) as error:
            failures += 1
            print(f"\nskipped {path}: {getattr(error, 'message', error)}", file=sys.stderr)
            continue
        result = image_result(path.name, analysed, classes).model_dump()
        for row in face_rows(str(path), result):
            if writer is None:
                out.write(json.dumps(row) + "\n")
            else:
                writer.writerow(row)
        if annotate_dir is not None:
            annotate_dir.mkdir(parents=True, exist_ok=True)
            drawn = draw_faces(analysed.image, analysed.detections, analysed.probabilities, classes)
            (annotate_dir / f"{path.stem}.annotated.jpg").write_bytes(encode(drawn, "jpeg"))
        progress(done, len(files))
    progress(len(files), len(files))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="emotion-cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("predict", help="analyse images and folders")
    run.add_argument("paths", nargs="+", type=Path)
    run.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    run.add_argument("--output", type=Path, help="write here instead of standard output")
    run.add_argument("--annotate", type=Path, metavar="DIR", help="also write annotated copies to DIR")
    args = parser.parse_args(argv)
    if args.output is None:
        return predict(args.paths, sys.stdout, args.format, args.annotate)
    with args.output.open("w", newline="") as out:
        return predict(args.paths, out, args.format, args.annotate)


if __name__ == "__main__":
    sys.exit(main())
