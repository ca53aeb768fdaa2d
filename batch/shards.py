"""Deterministic output shards: a rerun with the same INPUT and OUTPUT skips every finished shard.

Shard i holds the images at positions [i*size, (i+1)*size) of the sorted input listing, written as
OUTPUT/part-<i>.parquet only once every one of its images has its rows. A `_job.json` beside them
records the listing, so a rerun against a changed input fails instead of mixing two jobs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from batch.inputs import join, split_uri
from batch.scoring import OUTPUT_SCHEMA


@dataclass(frozen=True)
class Shard:
    index: int
    paths: list[str]

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}.parquet"


def plan_shards(paths: list[str], size: int) -> list[Shard]:
    return [Shard(i // size, paths[i : i + size]) for i in range(0, len(paths), size)]


class ShardStore:
    """The OUTPUT folder or prefix: the job record and one Parquet file per finished shard."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.filesystem, self.folder = split_uri(output)
        self.filesystem.create_dir(self.folder, recursive=True)

    def claim(self, source: str, paths: list[str], shard_size: int) -> None:
        """Record this job in OUTPUT, or check that OUTPUT already belongs to the same job."""
        record = {
            "input": source,
            "images": len(paths),
            "shard_size": shard_size,
            "listing_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
        }
        path = join(self.folder, "_job.json")
        if self.filesystem.get_file_info(path).is_file:
            with self.filesystem.open_input_stream(path) as stream:
                existing = json.loads(stream.read())
            if existing != record:
                raise ValueError(
                    f"{self.output} holds the output of another job ({existing['images']} images from "
                    f"{existing['input']}, shards of {existing['shard_size']}); choose another OUTPUT"
                )
            return
        with self.filesystem.open_output_stream(path) as stream:
            stream.write(json.dumps(record, indent=2).encode())

    def finished(self, shard: Shard) -> pa.Table | None:
        """The shard's outcome columns if its file is there and complete: one row set per input image."""
        path = join(self.folder, shard.name)
        if not self.filesystem.get_file_info(path).is_file:
            return None
        try:
            table = pq.read_table(path, columns=["path", "face", "error"], filesystem=self.filesystem)
        except (OSError, pa.ArrowInvalid):
            return None
        if set(table.column("path").to_pylist()) != set(shard.paths):
            return None
        return table

    def write(self, shard: Shard, table: pa.Table) -> None:
        """Write the shard under a temporary name, then move it in place: a file that exists is whole."""
        table = (
            table.select(OUTPUT_SCHEMA.names)
            .cast(OUTPUT_SCHEMA)
            .sort_by([("path", "ascending"), ("face", "ascending")])
        )
        final = join(self.folder, shard.name)
        partial = join(self.folder, f"_{shard.name}.partial")
        pq.write_table(table, partial, filesystem=self.filesystem)
        self.filesystem.move(partial, final)
