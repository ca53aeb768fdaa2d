"""Where an upload waits for its job: a local folder by default, or an S3-compatible object store
(`s3://bucket/prefix`, through boto3) when replicas share the work.

Media is written when the job is created and deleted when it ends: nothing a client sends is kept
after analysis. It is written in full (under a temporary name, then renamed; an object store
publishes an object whole) before the job's row is committed; an upload whose request died between
the two belongs to no job, and the orphan sweep deletes it (`jobs/sweeps.py`).

Object-store endpoints and credentials come from the usual environment
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit


class MediaStore(Protocol):
    def save(self, job_id: str, data: bytes) -> str: ...
    def read(self, location: str) -> bytes: ...
    def read_range(self, location: str, start: int, length: int) -> bytes:
        """`length` bytes from `start` (fewer at the end): a stimulus served in parts."""
        ...

    def delete(self, location: str) -> None: ...
    def older_than(self, age_s: float) -> list[str]:
        """The locations of every stored upload (finished or partial) last written more than `age_s` ago."""
        ...


class FolderMedia:
    """A local folder, made on the first save: uploads are the clients' faces, so only the service reads it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, job_id: str, data: bytes) -> str:
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.folder.chmod(0o700)
        path = self.folder / job_id
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        return str(path)

    def read(self, location: str) -> bytes:
        return Path(location).read_bytes()

    def read_range(self, location: str, start: int, length: int) -> bytes:
        with open(location, "rb") as stored:
            stored.seek(start)
            return stored.read(length)

    def delete(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)

    def older_than(self, age_s: float) -> list[str]:
        if not self.folder.is_dir():
            return []
        cutoff = time.time() - age_s
        found = []
        for entry in os.scandir(self.folder):
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile by its job
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    found.append(entry.path)
        return found


class ObjectStoreMedia:
    """An S3-compatible bucket, `s3://bucket/prefix`, through boto3 (thread-safe clients; a put publishes an
    object whole). A location is `bucket/key`."""

    def __init__(self, uri: str) -> None:
        try:
            import boto3
        except ModuleNotFoundError:
            raise RuntimeError(
                "an object-store media store needs boto3: pip install 'emotion-service[objectstore]'"
            ) from None
        parsed = urlsplit(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise RuntimeError(f"media store {uri!r}: an object store is s3://bucket/prefix")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.client = boto3.client("s3")

    def save(self, job_id: str, data: bytes) -> str:
        key = f"{self.prefix}/{job_id}" if self.prefix else job_id
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"{self.bucket}/{key}"

    def read(self, location: str) -> bytes:
        bucket, key = location.split("/", 1)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_range(self, location: str, start: int, length: int) -> bytes:
        bucket, key = location.split("/", 1)
        part = f"bytes={start}-{start + length - 1}"
        return self.client.get_object(Bucket=bucket, Key=key, Range=part)["Body"].read()

    def delete(self, location: str) -> None:
        bucket, key = location.split("/", 1)
        self.client.delete_object(Bucket=bucket, Key=key)  # S3 answers 204 for a missing key too

    def older_than(self, age_s: float) -> list[str]:
        cutoff = time.time() - age_s
        prefix = f"{self.prefix}/" if self.prefix else ""
        found = []
        # This prefix's own objects only (Delimiter): another store may live below it (the stimuli).
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            found += [
                f"{self.bucket}/{item['Key']}"
                for item in page.get("Contents", [])
                if item["LastModified"].timestamp() < cutoff
            ]
        return found


def open_media_store(location: str, below: str | None = None) -> MediaStore:
    """`s3://bucket/prefix` for an object store, else a local folder; `below`: a store of its own under it
    (the studies' stimuli, which the uploads' orphan sweep never sees)."""
    if below is not None:
        location = f"{location.rstrip('/')}/{below}"
    if "://" in location:
        return ObjectStoreMedia(location)
    return FolderMedia(Path(location))
