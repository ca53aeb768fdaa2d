import csv
import json
from pathlib import Path

import cv2
import pytest

from service.cli import main
from tests.helpers.data import videos_dir
from tests.helpers.faces import fer_faces
from training.scenes import place_faces

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    (folder / "nested").mkdir()
    cv2.imwrite(str(folder / "two.jpg"), place_faces(fer_faces("happy", 2), 300, 500, 140, seed=60).image)
    cv2.imwrite(str(folder / "nested" / "one.png"), place_faces(fer_faces("sad", 1), 240, 320, 140, seed=61).image)
    cv2.imwrite(str(folder / "none.jpg"), place_faces([], 200, 200, 50, seed=62).image)
    (folder / "notes.txt").write_text("not an image and not picked up from a folder")
    return folder


def test_jsonl_for_a_folder(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.jsonl"
    assert main(["predict", str(photos), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in rows) == ["one.png", "two.jpg", "two.jpg"]
    for row in rows:
        assert sum(row[c] for c in CLASSES) == pytest.approx(1, abs=1e-4)
        assert row["dominant_emotion"] == max(CLASSES, key=row.get)


def test_csv_with_annotated_copies(photos: Path, tmp_path: Path) -> None:
    out, annotated = tmp_path / "faces.csv", tmp_path / "annotated"
    assert (
        main(
            ["predict", str(photos / "two.jpg"), "--format", "csv", "--output", str(out), "--annotate", str(annotated)]
        )
        == 0
    )
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and list(rows[0]) == [
        "file",
        "face",
        "x",
        "y",
        "width",
        "height",
        "detection_score",
        *CLASSES,
        "dominant_emotion",
    ]
    drawn = cv2.imread(str(annotated / "two.annotated.jpg"))
    assert drawn.shape == (300, 500, 3)


def test_bad_files_are_reported_and_skipped(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "faces.jsonl"
    status = main(["predict", str(photos / "notes.txt"), str(photos / "nested"), "--output", str(out)])
    assert status == 1
    assert "skipped" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1


def test_a_clip_gives_a_row_per_face_per_frame_with_its_track(tmp_path: Path) -> None:
    out = tmp_path / "faces.csv"
    clip = videos_dir() / "two-people-head-pose.webm"
    assert main(["predict", str(clip), "--format", "csv", "--output", str(out), "--fps", "2"]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["file", "time_ms", "track_id", "face"]
    times = sorted({float(r["time_ms"]) for r in rows})
    assert len(times) == 10 and len(rows) == 20  # 4.7 s at 2 fps, two people in every frame
    assert {r["track_id"] for r in rows} == {"1", "2"}


def test_summary_has_a_row_per_person_for_clips_and_photos(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "people.jsonl"
    clip = videos_dir() / "two-people-head-pose.webm"
    assert main(["predict", str(clip), str(photos / "two.jpg"), "--summary", "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    from_clip = [r for r in rows if r["file"].endswith(".webm")]
    assert [r["track_id"] for r in from_clip] == [1, 2]
    assert all(r["frames"] == 23 and r["last_ms"] > 4000 for r in from_clip)
    from_photo = [r for r in rows if r["file"].endswith(".jpg")]
    assert [(r["track_id"], r["frames"]) for r in from_photo] == [(1, 1), (2, 1)]
    for row in rows:
        assert sum(row[c] for c in CLASSES) == pytest.approx(1, abs=1e-4)
