"""Where the images are: a local folder, a list file of paths or URIs, or an object-store prefix.

Every location goes through pyarrow's filesystems, so `s3://`, `gs://` and `abfs://` work like local
paths. Object-store endpoints and credentials come from the usual environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, a service account...).
"""

from __future__ import annotations

import os
from functools import lru_cache

import pyarrow.fs as pafs


def split_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding a URI or local path, and the path within it."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), absolute(uri)
    scheme, _, rest = uri.partition("://")
    return _filesystem(scheme, rest.split("/", 1)[0]), rest.rstrip("/")


@lru_cache(maxsize=32)
def _filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """One filesystem per bucket and process: making one may ask the store for the bucket's region."""
    filesystem, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
    return filesystem


def join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def absolute(location: str) -> str:
    """A URI as it is, a local path made absolute: Ray's workers need not share the caller's directory."""
    return location if "://" in location else os.path.abspath(location)


def list_images(source: str) -> list[str]:
    """Every file under a folder or prefix, or every line of a list file, sorted: the job's fixed input order.

    Nothing is filtered by name: a file that is not an image gets an error row rather than vanishing.
    """
    filesystem, path = split_uri(source)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{source} does not exist")
    if info.type == pafs.FileType.File:
        with filesystem.open_input_stream(path) as stream:
            lines = stream.read().decode().splitlines()
        return sorted({absolute(line.strip()) for line in lines if line.strip()})
    prefix = absolute(source).rstrip("/")
    found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    files = [entry.path for entry in found if entry.type == pafs.FileType.File]
    # Keep the caller's spelling of the prefix (s3://bucket/... or a local folder).
    return sorted(join(prefix, name[len(path) :].lstrip("/")) for name in files)


def read_bytes(uri: str) -> bytes:
    filesystem, path = split_uri(uri)
    with filesystem.open_input_file(path) as handle:
        return handle.read()
