"""The scoring job on Ray Data: list, find faces in tasks, classify in an actor pool, write shards."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import ray

from batch.inputs import list_images
from batch.scoring import EmotionScorer, find_faces
from batch.shards import Shard, ShardStore, plan_shards
from service.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    source: str
    output: str
    settings: Settings
    address: str | None = None  # an existing Ray cluster; None starts a local one (or uses RAY_ADDRESS)
    shard_size: int = 1000  # images per output file: the unit of resuming
    actors: int | None = None  # classifying actors; None: half the cluster's CPUs
    cpus_per_actor: float = 1.0
    model_batch: int = 256  # crops per onnxruntime call
    images_per_task: int = 32  # images per decode-and-detect batch


@dataclass
class Outcomes:
    """What became of each image: the final count proves nothing was dropped."""

    with_faces: int = 0
    without_faces: int = 0
    faces: int = 0
    errors: Counter = field(default_factory=Counter)

    @property
    def images(self) -> int:
        return self.with_faces + self.without_faces + sum(self.errors.values())

    def add(self, table: pa.Table) -> None:
        """Count a shard's rows (columns path, face, error)."""
        has_face = pc.is_valid(table.column("face"))
        faces = pc.sum(has_face).as_py() or 0
        errors = table.filter(pc.is_valid(table.column("error"))).column("error").to_pylist()
        self.faces += faces
        self.with_faces += len(pc.unique(table.filter(has_face).column("path")))
        self.errors.update(errors)
        self.without_faces += len(table) - faces - len(errors)


@dataclass
class JobReport:
    images: int
    skipped_shards: int
    scored_images: int
    seconds: float
    outcomes: Outcomes

    def lines(self) -> list[str]:
        rate = self.scored_images / self.seconds if self.seconds else 0.0
        o = self.outcomes
        errors = ", ".join(f"{code} {n}" for code, n in sorted(o.errors.items())) or "none"
        return [
            f"scored {self.scored_images} images in {self.seconds:.1f} s ({rate:.1f} images/s); "
            f"{self.skipped_shards} finished shards skipped",
            f"{self.images} input images = {o.with_faces} with faces ({o.faces} faces) + "
            f"{o.without_faces} without + {sum(o.errors.values())} errors ({errors})",
        ]


@contextmanager
def ray_cluster(address: str | None) -> Iterator[None]:
    """Join the given cluster (or RAY_ADDRESS), else start a local one for the job and stop it after."""
    ray.init(address=address, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def actor_count(options: JobOptions, cluster_cpus: float) -> int:
    """Classifying actors hold their CPUs for the whole job; decode-and-detect tasks need the rest.

    On 2 cores Ray Data stalls if the actors take every CPU, so that is refused up front.
    """
    actors = options.actors or max(1, math.floor(cluster_cpus / 2 / options.cpus_per_actor))
    if actors * options.cpus_per_actor >= cluster_cpus:
        raise ValueError(
            f"{actors} actors x {options.cpus_per_actor} CPUs leave none of the cluster's {cluster_cpus:g} "
            "CPUs for decoding and detection; use fewer actors or fewer CPUs per actor"
        )
    return actors


def detection_memory(settings: Settings) -> int:
    """Bytes a detection task may need: the largest accepted image as BGR, three times over, and the models."""
    return settings.max_image_pixels * 3 * 3 + 256 * 2**20


def scored_tables(pending: list[Shard], options: JobOptions) -> Iterator[pa.Table]:
    """Ray Data's streaming output: face rows with probabilities, in blocks, in no set order."""
    items = [{"shard": shard.index, "path": path} for shard in pending for path in shard.paths]
    settings_json = options.settings.model_dump_json()
    actors = actor_count(options, ray.cluster_resources().get("CPU", 1))
    dataset = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / options.images_per_task)))
    dataset = dataset.map_batches(
        find_faces,
        fn_kwargs={"settings_json": settings_json},
        batch_size=options.images_per_task,
        batch_format="pyarrow",
        num_cpus=1,
        # Room to decode the largest image the settings accept. Being unlike the actors' request, it
        # also keeps Ray Data from fusing detection into the actors, which would leave it their CPUs only.
        memory=detection_memory(options.settings),
    )
    dataset = dataset.map_batches(
        EmotionScorer,
        fn_constructor_kwargs={
            "settings_json": settings_json,
            "threads": max(1, int(options.cpus_per_actor)),
        },
        batch_size=options.model_batch,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=options.cpus_per_actor,
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")


def write_as_completed(tables: Iterator[pa.Table], pending: list[Shard], store: ShardStore, outcomes: Outcomes) -> None:
    """Gather rows per shard and write each shard the moment all of its images have their rows.

    An image has max(1, faces) rows; they may arrive in different blocks.
    """
    shards = {shard.index: shard for shard in pending}
    rows_seen: Counter = Counter()
    images_done: Counter = Counter()
    parts: dict[int, list[pa.Table]] = {index: [] for index in shards}
    for table in tables:
        for index in pc.unique(table.column("shard")).to_pylist():
            parts[index].append(table.filter(pc.equal(table.column("shard"), index)))
        for shard, path, faces in zip(*(table.column(c).to_pylist() for c in ("shard", "path", "faces"))):
            rows_seen[path] += 1
            if rows_seen[path] == max(1, faces):
                del rows_seen[path]  # the driver keeps only images in flight, not the whole archive
                images_done[shard] += 1
                if images_done[shard] == len(shards[shard].paths):
                    finished = pa.concat_tables(parts.pop(shard))
                    store.write(shards[shard], finished)
                    outcomes.add(finished)
    if parts:
        raise RuntimeError(f"shards {sorted(parts)} did not receive every image's rows")


def run_job(options: JobOptions) -> JobReport:
    """Score every image of the source into Parquet shards, skipping shards a previous run finished."""
    started = time.perf_counter()
    paths = list_images(options.source)
    store = ShardStore(options.output)
    store.claim(options.source, paths, options.shard_size)
    outcomes, pending = Outcomes(), []
    for shard in plan_shards(paths, options.shard_size):
        finished = store.finished(shard)
        if finished is None:
            pending.append(shard)
        else:
            outcomes.add(finished)
    skipped = math.ceil(len(paths) / options.shard_size) - len(pending)
    log.info("%d images in %d shards, %d already finished", len(paths), skipped + len(pending), skipped)
    if pending:
        with ray_cluster(options.address):
            write_as_completed(scored_tables(pending, options), pending, store, outcomes)
    scored = sum(len(shard.paths) for shard in pending)
    return JobReport(len(paths), skipped, scored, time.perf_counter() - started, outcomes)
