"""Where an upload waits for its job: a local folder by default, or an object store (`s3://bucket/prefix`,
through pyarrow's filesystems, as the batch job reads its inputs) when replicas share the work.

Media is written when the job is created and deleted when it ends: nothing a client sends is kept
after analysis. It is written in full (under a temporary name, then renamed; an object store
publishes an object whole) before the job's row is committed; an upload whose request died between
the two belongs to no job, and the orphan sweep deletes it (service.jobs.worker.sweep_orphans).

Object-store endpoints and credentials come from the usual environment
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Protocol


class MediaStore(Protocol):
    def save(self, job_id: str, data: bytes) -> str: ...
    def read(self, location: str) -> bytes: ...
    def delete(self, location: str) -> None: ...
    def older_than(self, age_s: float) -> list[str]:
        """The locations of every stored upload (finished or partial) last written more than `age_s` ago."""
        ...


class FolderMedia:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # uploads are the clients' faces

    def save(self, job_id: str, data: bytes) -> str:
        path = self.folder / job_id
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        return str(path)

    def read(self, location: str) -> bytes:
        return Path(location).read_bytes()

    def delete(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)

    def older_than(self, age_s: float) -> list[str]:
        cutoff = time.time() - age_s
        found = []
        for entry in os.scandir(self.folder):
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile by its job
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    found.append(entry.path)
        return found


class ObjectStoreMedia:
    def __init__(self, uri: str) -> None:
        try:
            from pyarrow import fs
        except ModuleNotFoundError:
            raise RuntimeError(
                "an object-store media store needs pyarrow: pip install 'emotion-service[batch]'"
            ) from None
        self.filesystem, self.prefix = fs.FileSystem.from_uri(uri)

    def save(self, job_id: str, data: bytes) -> str:
        location = f"{self.prefix.rstrip('/')}/{job_id}"
        with self.filesystem.open_output_stream(location) as out:
            out.write(data)
        return location

    def read(self, location: str) -> bytes:
        with self.filesystem.open_input_stream(location) as stream:
            return stream.read()

    def delete(self, location: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(location)

    def older_than(self, age_s: float) -> list[str]:
        from pyarrow import fs

        cutoff = time.time() - age_s
        listed = self.filesystem.get_file_info(fs.FileSelector(self.prefix.rstrip("/"), allow_not_found=True))
        return [
            info.path
            for info in listed
            if info.type == fs.FileType.File and info.mtime is not None and info.mtime.timestamp() < cutoff
        ]


def open_media_store(location: str) -> MediaStore:
    """`s3://...` (or another pyarrow filesystem URI) for an object store, else a local folder."""
    if "://" in location:
        return ObjectStoreMedia(location)
    return FolderMedia(Path(location))
