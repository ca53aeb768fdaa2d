"""The batch image, built from the real Dockerfile: `emotion-batch` on a folder mounted read-only,
Parquet out, as k8s/batch runs it."""

from __future__ import annotations

from pathlib import Path

import cv2
import pyarrow.parquet as pq

from tests.helpers.faces import fer_faces
from tests.helpers.podman import Podman
from training.scenes import place_faces


def test_emotion_batch_scores_a_read_only_folder_into_parquet(podman: Podman, batch_image: str, tmp_path: Path) -> None:
    photos, scores = tmp_path / "photos", tmp_path / "scores"
    photos.mkdir()
    scores.mkdir(mode=0o777)
    scores.chmod(0o777)  # the image's user (10001) writes here
    faces = fer_faces("happy", 3) + fer_faces("sad", 3)
    for index in range(3):
        scene = place_faces(faces[2 * index : 2 * index + 2], 240, 480, 120, seed=index).image
        cv2.imwrite(str(photos / f"scene-{index}.jpg"), scene)
    (photos / "notes.txt").write_text("not an image")
    ran = podman(
        "run", "--rm", "--shm-size", "512m", "-v", f"{photos}:/data/photos:ro", "-v", f"{scores}:/data/scores",
        batch_image, "emotion-batch", "score", "/data/photos", "/data/scores", "--model", "emotion-fast",
        timeout=600, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    table = pq.read_table(scores)
    rows = table.to_pylist()
    assert {Path(r["path"]).name for r in rows} == {"scene-0.jpg", "scene-1.jpg", "scene-2.jpg", "notes.txt"}
    assert sum(r["face"] is not None for r in rows) == 6
    assert [r["error"] for r in rows if Path(r["path"]).name == "notes.txt"] == ["unsupported_type"]
    size = podman.size_mb(batch_image)
    print(f"batch image: {size:.0f} MB")
