"""emotion-batch reading s3:// and writing Parquet back to it, against a real S3-compatible server (moto)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from tests.helpers.archive import run_cli


def test_an_archive_in_object_storage_is_scored_into_object_storage(
    object_store: dict[str, str], archive: tuple[Path, dict], ray_address: str
) -> None:
    folder, expected = archive
    s3 = boto3.client("s3", endpoint_url=object_store["AWS_ENDPOINT_URL"], **_boto_credentials(object_store))
    for bucket in ("campaign-photos", "scores"):
        s3.create_bucket(Bucket=bucket)
    for name in expected:
        s3.upload_file(str(folder / name), "campaign-photos", f"2026/launch/{name}")

    run = run_cli(
        "score", "s3://campaign-photos/2026/launch/", "s3://scores/launch/", "--address", ray_address,
        "--shard-size", "16", env=object_store,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"{len(expected)} input images = " in run.stderr

    endpoint = object_store["AWS_ENDPOINT_URL"].removeprefix("http://")
    filesystem = pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", region="us-east-1",
        access_key=object_store["AWS_ACCESS_KEY_ID"], secret_key=object_store["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    listed = [info.path for info in filesystem.get_file_info(pafs.FileSelector("scores/launch"))]
    assert sorted(p.rsplit("/", 1)[1] for p in listed) == ["_job.json", "part-00000.parquet", "part-00001.parquet"]
    table = pads.dataset("scores/launch", filesystem=filesystem, format="parquet", exclude_invalid_files=True)
    rows = table.to_table(columns=["path", "face", "error"]).to_pylist()
    paths = {row["path"] for row in rows}
    assert paths == {f"s3://campaign-photos/2026/launch/{name}" for name in expected}
    errors = {row["path"].rsplit("/", 1)[1]: row["error"] for row in rows if row["error"]}
    assert errors == {"truncated.jpg": "undecodable", "notes.txt": "unsupported_type", "empty.png": "empty"}


def _boto_credentials(environment: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"],
        "region_name": environment["AWS_DEFAULT_REGION"],
    }
