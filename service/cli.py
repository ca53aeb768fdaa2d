"""Run the service's pipeline on local photos and clips, without a server.

    python -m service.cli predict PATH... [--format jsonl|csv] [--output FILE] [--annotate DIR]
        [--fps 5] [--smoothing 1.0] [--summary]

PATH is a photo, a clip or a folder (searched recursively). Writes one row per face: the file, the
face's box, detection score, the seven probabilities and the dominant emotion; a clip gives one row
per face per analysed frame, with its `time_ms` and `track_id` (the emotions smoothed over the
track). With --summary, one row per person instead: a clip's tracks with their mean emotions, a
photo's faces as one-frame tracks. Files that are not usable are reported on stderr and skipped;
the exit status is then 1.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import TextIO

import numpy as np
from pydantic import ValidationError

from service.config import get_settings
from service.inference.annotate import draw_faces, encode
from service.inference.errors import ImageRejected, UnknownModel
from service.inference.imaging import sniff_container, sniff_format
from service.ops.metrics import Metrics
from service.options import DEFAULT_CLIP, FPS_HELP, SMOOTHING_HELP, ClipOptions
from service.results import image_result, track_results, tracked_faces
from service.runtime import Runtime, load_runtime
from service.video.analysis import ClipAnalysis, open_clip

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"}
BOX = ["x", "y", "width", "height", "detection_score"]


def media_files(paths: list[Path]) -> Iterator[Path]:
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        else:
            yield path


def is_clip(path: Path) -> bool:
    """The bytes decide; a GIF is analysed as a photo (its first frame), as by POST /v1/predict."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return sniff_format(head) is None and sniff_container(head) is not None


def face_row(face: dict) -> dict:
    """A face of the public schema, flattened: box, detection score, the seven probabilities, dominant emotion."""
    scores = {"detection_score": face["detection_score"], **face["emotions"]}
    return face["box"] | scores | {"dominant_emotion": face["dominant_emotion"]}


def face_rows(file: str, result: dict) -> Iterator[dict]:
    for index, face in enumerate(result["faces"]):
        yield {"file": file, "face": index} | face_row(face)


def photo_summary_rows(file: str, result: dict) -> Iterator[dict]:
    """A photo's faces as one-frame tracks, so --summary has one shape for photos and clips."""
    for index, face in enumerate(result["faces"]):
        row = {"file": file, "track_id": index + 1, "first_ms": 0.0, "last_ms": 0.0, "frames": 1}
        yield row | face["emotions"] | {"dominant_emotion": face["dominant_emotion"]}


async def clip_rows(
    runtime: Runtime, path: Path, options: ClipOptions, summary_only: bool, model: str | None = None
) -> AsyncIterator[dict]:
    """A clip's rows: one per face per analysed frame, or with `summary_only` one per track at the end."""
    classifier = runtime.emotion(model).classifier
    fps, smoothing = options.fps, options.smoothing
    clip = open_clip(path.read_bytes(), fps, runtime.settings)

    async def classify(crops: np.ndarray) -> np.ndarray:
        return classifier(crops)

    analysis = ClipAnalysis(
        clip,
        fps,
        runtime.pipeline,
        classify,
        runtime.metrics,
        runtime.settings.tracking,
        smoothing,
        keep_timeline=False,
    )
    async with aclosing(analysis.frames()) as frames:
        async for frame in frames:
            if summary_only:
                continue
            for index, face in enumerate(tracked_faces(frame.faces, analysis.classes)):
                timing = {"file": str(path), "time_ms": frame.time_ms, "track_id": face.track_id, "face": index}
                yield timing | face_row(face.model_dump())
    if summary_only:
        for track in track_results(analysis.summary):
            row = {"file": str(path), **track.model_dump(include={"track_id", "first_ms", "last_ms", "frames"})}
            yield row | track.emotions.model_dump() | {"dominant_emotion": track.dominant_emotion}


def columns(classes: tuple[str, ...], any_clip: bool, summary: bool) -> list[str]:
    if summary:
        return ["file", "track_id", "first_ms", "last_ms", "frames", *classes, "dominant_emotion"]
    timing = ["time_ms", "track_id"] if any_clip else []
    return ["file", *timing, "face", *BOX, *classes, "dominant_emotion"]


def progress(done: int, total: int, stream: TextIO = sys.stderr) -> None:
    if stream.isatty():
        filled = 30 * done // max(total, 1)
        stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        stream.flush()


class RowWriter:
    def __init__(self, out: TextIO, fmt: str, fieldnames: list[str]) -> None:
        self.out = out
        self.csv = csv.DictWriter(out, fieldnames=fieldnames, restval="") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.csv is None:
            self.out.write(json.dumps(row) + "\n")
        else:
            self.csv.writerow(row)


def predict(paths: list[Path], out: TextIO, options: argparse.Namespace) -> int:
    runtime = load_runtime(get_settings(), Metrics())
    classes = runtime.emotion(options.model).classifier.classes
    files = list(media_files(paths))
    clips = {path for path in files if is_clip(path)}
    writer = RowWriter(out, options.format, columns(classes, bool(clips), options.summary))
    failures = 0
    for done, path in enumerate(files, start=1):
        try:
            if path in clips:
                asyncio.run(write_clip(runtime, path, writer, options))
            else:
                write_photo(runtime, path, writer, options)
        except (ImageRejected, UnknownModel, OSError) as error:
            failures += 1
            print(f"\nskipped {path}: {getattr(error, 'message', error)}", file=sys.stderr)
            continue
        progress(done, len(files))
    progress(len(files), len(files))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return 1 if failures else 0


async def write_clip(runtime: Runtime, path: Path, writer: RowWriter, options: argparse.Namespace) -> None:
    clip = ClipOptions(fps=options.fps, smoothing=options.smoothing)
    async for row in clip_rows(runtime, path, clip, options.summary, options.model):
        writer.write(row)


def write_photo(runtime: Runtime, path: Path, writer: RowWriter, options: argparse.Namespace) -> None:
    classifier = runtime.emotion(options.model).classifier
    classes = classifier.classes
    analysed = runtime.pipeline.analyse(path.read_bytes(), classifier)
    result = image_result(path.name, analysed, classes).model_dump()
    rows = photo_summary_rows if options.summary else face_rows
    for row in rows(str(path), result):
        writer.write(row)
    if options.annotate is not None:
        options.annotate.mkdir(parents=True, exist_ok=True)
        drawn = draw_faces(analysed.image, analysed.faces, classes)
        (options.annotate / f"{path.stem}.annotated.jpg").write_bytes(encode(drawn, "jpeg"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="emotion-cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("predict", help="analyse photos, clips and folders")
    run.add_argument("paths", nargs="+", type=Path)
    run.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    run.add_argument("--output", type=Path, help="write here instead of standard output")
    run.add_argument("--annotate", type=Path, metavar="DIR", help="also write annotated copies of photos to DIR")
    run.add_argument("--fps", type=float, default=DEFAULT_CLIP.fps, help=f"clips: {FPS_HELP.lower()}")
    run.add_argument("--smoothing", type=float, default=DEFAULT_CLIP.smoothing, help=f"clips: {SMOOTHING_HELP.lower()}")
    run.add_argument("--summary", action="store_true", help="one row per person (track) instead of per face")
    run.add_argument("--model", help="emotion model, e.g. emotion-fast; default: the service's default")
    args = parser.parse_args(argv)
    try:  # the ranges of /v1/video
        ClipOptions(fps=args.fps, smoothing=args.smoothing)
    except ValidationError as invalid:
        parser.error("; ".join(f"--{error['loc'][0]}: {error['msg']}" for error in invalid.errors()))
    if args.output is None:
        return predict(args.paths, sys.stdout, args)
    with args.output.open("w", newline="") as out:
        return predict(args.paths, out, args)


if __name__ == "__main__":
    sys.exit(main())
