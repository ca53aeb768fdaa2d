"""emotion-batch on a real 2-CPU Ray cluster: every image accounted for, the service's own answers, resuming."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from fastapi.testclient import TestClient

from batch.inputs import list_images
from batch.job import JobOptions, actor_count, run_job
from batch.scoring import CLASSES, OUTPUT_SCHEMA, find_faces
from batch.shards import ShardStore
from service.config import Settings
from tests.helpers.archive import BROKEN, run_cli, write_archive


def read_output(folder: Path) -> pa.Table:
    return pads.dataset(folder, format="parquet").to_table().sort_by([("path", "ascending"), ("face", "ascending")])


def rows_by_image(table: pa.Table, root: Path) -> dict[str, list[dict]]:
    images: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        images.setdefault(str(Path(row["path"]).relative_to(root)), []).append(row)
    return images


@pytest.fixture(scope="module")
def scored(ray_address: str, archive: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One job with the default actors and CPUs, on 2 CPUs: it must finish (Ray Data can stall there)."""
    folder, _ = archive
    output = tmp_path_factory.mktemp("scored")
    report = run_job(JobOptions(str(folder), str(output), Settings(), address=ray_address, shard_size=10))
    return report, read_output(output), output


def test_every_image_has_its_rows_and_nothing_is_dropped(scored: tuple, archive: tuple[Path, dict]) -> None:
    report, table, output = scored
    folder, expected = archive
    assert table.schema.equals(OUTPUT_SCHEMA)
    images = rows_by_image(table, folder)
    assert set(images) == set(expected)
    for name, faces in expected.items():
        rows = images[name]
        if faces is None:  # broken: one row, its error code, no face
            assert [(r["error"], r["face"]) for r in rows] == [(BROKEN[name], None)]
        elif faces == 0:
            assert [(r["error"], r["face"], r["image_width"]) for r in rows] == [(None, None, 320)]
        else:  # the count is the service's (see the next test); indices follow detection order
            assert [r["face"] for r in rows] == (list(range(rows[0]["faces"])) or [None]), name
            for row in rows[: rows[0]["faces"]]:
                assert abs(sum(row[c] for c in CLASSES) - 1) < 1e-4 and row["dominant_emotion"] in CLASSES
                assert row["emotion_model"] == "emotion:7" and row["detector_model"].startswith("retinaface:")
    outcomes = report.outcomes
    assert report.images == len(expected) == outcomes.images
    assert outcomes.errors == dict.fromkeys(BROKEN.values(), 1)
    assert outcomes.faces >= 0.9 * sum(f for f in expected.values() if f)
    assert sorted(p.name for p in output.glob("part-*.parquet")) == [f"part-{i:05d}.parquet" for i in range(3)]


def test_faces_score_as_in_the_service(scored: tuple, archive: tuple[Path, dict], client: TestClient) -> None:
    _, table, _ = scored
    folder, expected = archive
    images = rows_by_image(table, folder)
    for name in (n for n, faces in expected.items() if faces):
        answer = client.post("/v1/predict", files=[("files", ("x.jpg", (folder / name).read_bytes()))]).json()
        faces = answer["images"][0]["faces"]
        assert len(faces) == images[name][0]["faces"]
        for face, row in zip(faces, images[name]):
            # The service rounds corners to 0.1 px, and its width and height are differences of rounded corners.
            for key, tolerance in (("x", 0.051), ("y", 0.051), ("width", 0.101), ("height", 0.101)):
                assert face["box"][key] == pytest.approx(row[key], abs=tolerance)
            for emotion in CLASSES:
                assert face["emotions"][emotion] == pytest.approx(row[emotion], abs=2e-6)


def test_a_killed_run_resumes_without_duplicates_or_gaps(ray_address: str, tmp_path: Path) -> None:
    expected = write_archive(tmp_path / "archive", 30)
    output = tmp_path / "out"
    args = ["score", str(tmp_path / "archive"), str(output), "--address", ray_address, "--shard-size", "4"]
    args += ["--images-per-task", "2", "--batch-size", "4", "--model", "emotion-fast"]
    first = subprocess.Popen([str(Path(sys.executable).parent / "emotion-batch"), *args], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(output.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    shards = -(-len(expected) // 4)
    finished = len(list(output.glob("part-*.parquet")))
    assert 0 < finished < shards, "the run was not stopped half way"

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{finished} finished shards skipped" in rerun.stderr
    table = read_output(output)
    keys = list(zip(table.column("path").to_pylist(), table.column("face").to_pylist()))
    assert len(keys) == len(set(keys))  # no duplicates
    assert {Path(p).relative_to(tmp_path / "archive").as_posix() for p, _ in keys} == set(expected)
    assert f"{len(expected)} input images = " in rerun.stderr


def test_an_output_of_another_job_is_refused(archive: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = archive
    ShardStore(str(tmp_path)).claim("elsewhere", ["/a.jpg"], 1000)
    refused = run_cli("score", str(folder), str(tmp_path))
    assert refused.returncode == 2
    assert "holds the output of another job" in refused.stderr


def test_a_list_file_names_the_images(archive: tuple[Path, dict], tmp_path: Path) -> None:
    folder, expected = archive
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(folder / name) for name in reversed(list(expected))) + "\n\n")
    assert list_images(str(listing)) == sorted(str(folder / name) for name in expected)


def test_a_file_that_cannot_be_read_gets_an_error_row(archive: tuple[Path, dict], tmp_path: Path) -> None:
    """The detection stage on its own, in this process: a listed file gone by the time it is read."""
    folder, _ = archive
    paths = [str(tmp_path / "deleted.jpg"), str(folder / "scenes/scene-000.jpg")]
    rows = find_faces(pa.table({"shard": [0, 0], "path": paths}), Settings().model_dump_json()).to_pylist()
    assert (rows[0]["error"], rows[0]["face"], rows[0]["crop"]) == ("unreadable", None, None)
    assert rows[1]["faces"] == 2 and all(len(row["crop"]) == 48 * 48 for row in rows[1:])


def test_actors_must_leave_cpus_for_detection() -> None:
    options = JobOptions("in", "out", Settings())
    assert actor_count(options, 2) == 1
    assert actor_count(options, 64) == 32
    with pytest.raises(ValueError, match="leave none"):
        actor_count(JobOptions("in", "out", Settings(), actors=2), 2)
