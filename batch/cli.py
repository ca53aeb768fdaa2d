"""`emotion-batch score INPUT OUTPUT`: every face of an image archive into a Parquet table."""

from __future__ import annotations

import argparse
import logging
import sys

try:
    from batch.job import JobOptions, run_job
except ModuleNotFoundError as missing:  # Ray Data and pyarrow come with the `batch` extra only
    print(f"emotion-batch needs {missing.name}: pip install 'emotion-service[batch]'", file=sys.stderr)
    sys.exit(2)
from service.config import get_settings


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="emotion-batch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score every image under INPUT into Parquet shards under OUTPUT (rerun to resume)",
        description="Detector, model and thresholds come from the same EMOTION_* settings as the service.",
    )
    score.add_argument("input", help="folder, list file of paths or URIs, or object-store prefix (s3://...)")
    score.add_argument("output", help="folder or object-store prefix for the Parquet shards")
    score.add_argument("--address", help="Ray cluster to run on (default: RAY_ADDRESS, else a local Ray)")
    score.add_argument("--model", help="emotion model name[:version] (default: the service's default model)")
    score.add_argument("--shard-size", type=int, default=1000, help="images per output file (default 1000)")
    score.add_argument("--actors", type=int, help="classifying actors (default: half the cluster's CPUs)")
    score.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each actor holds (default 1)")
    score.add_argument("--batch-size", type=int, default=256, help="crops per model call (default 256)")
    score.add_argument("--images-per-task", type=int, default=32, help="images per detection batch (default 32)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if args.model:
        name = args.model.partition(":")[0]
        settings = settings.model_copy(update={"emotion_models": [args.model], "default_emotion_model": name})
    options = JobOptions(
        source=args.input,
        output=args.output,
        settings=settings,
        address=args.address,
        shard_size=args.shard_size,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        model_batch=args.batch_size,
        images_per_task=args.images_per_task,
    )
    try:
        report = run_job(options)
    except (ValueError, FileNotFoundError) as error:
        print(f"emotion-batch: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0
