"""`descriptors=true` on photos, clips, streams and jobs: each face gains its 52 blendshapes, the five
actions, gaze and the mesh head pose, and the answer names the face mesh's models; without it, nothing
changes."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from tests.helpers.clips import clip_bytes
from tests.helpers.jobs import PHOTO  # a happy and a sad FER-2013 face in one scene

ACTIONS = {"smile", "brow_furrow", "brow_raise", "eye_closure", "jaw_open"}
MESH_MODELS = {"face_landmarks", "face_blendshapes"}


def described(face: dict) -> bool:
    return (
        len(face["descriptors"]) == 52
        and {"mouthSmileLeft", "browDownRight", "eyeBlinkLeft", "jawOpen"} <= set(face["descriptors"])
        and set(face["actions"]) == ACTIONS
        and all(0 <= v <= 1 for v in [*face["descriptors"].values(), *face["actions"].values()])
        and -90 <= face["gaze"]["yaw"] <= 90
        and face["head_pose"] is not None
    )


def test_a_photo_with_descriptors(client: TestClient) -> None:
    answer = client.post("/v1/predict?descriptors=true", files={"files": ("p.jpg", PHOTO)}).json()
    assert set(answer["models"]) >= MESH_MODELS
    faces = {face["dominant_emotion"]: face for face in answer["images"][0]["faces"]}
    assert set(faces) == {"happy", "sad"} and all(described(face) for face in faces.values())
    assert faces["happy"]["actions"]["smile"] > 0.5 > faces["sad"]["actions"]["smile"]
    plain = client.post("/v1/predict", files={"files": ("p.jpg", PHOTO)}).json()
    assert not MESH_MODELS & set(plain["models"])
    assert all(f["descriptors"] is f["actions"] is f["gaze"] is None for f in plain["images"][0]["faces"])


def test_a_clip_with_descriptors_has_them_on_every_timeline_entry(client: TestClient) -> None:
    files = {"file": ("c.mp4", clip_bytes("asl-please.mp4"))}
    answer = client.post("/v1/video?descriptors=true&fps=5", files=files).json()
    (track,) = answer["tracks"]
    assert set(answer["models"]) >= MESH_MODELS and len(track["timeline"]) >= 10
    assert all(described(entry) for entry in track["timeline"])


def test_a_stream_asks_for_descriptors_in_its_first_message(client: TestClient) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"descriptors": True}))
        ws.send_bytes(PHOTO)
        answer = json.loads(ws.receive_text())
    assert len(answer["faces"]) == 2 and all(described(face) for face in answer["faces"])
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"descriptors": "yes"}))
        message = ws.receive()
    assert message["type"] == "websocket.close" and message["code"] == 1008


def test_a_photo_job_keeps_its_descriptors_option(client: TestClient) -> None:
    job = client.post("/v1/jobs", files={"file": ("p.jpg", PHOTO)}, data={"descriptors": "true"}).json()
    deadline = time.monotonic() + 60
    while (done := client.get(f"/v1/jobs/{job['job_id']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert done["status"] == "succeeded"
    assert all(described(face) for face in done["result"]["images"][0]["faces"])


# Blinks in two-people-head-pose.webm, labelled by eye from enlarged frames (the lids hide the iris): the
# woman on the left blinks five times, the man on the right once, slowly (his eyes shut for about 0.4 s).
# The other clips have none: their eyes stay open or look down for seconds at a time.
LEFT_BLINKS_MS = (667, 1583, 2333, 3083, 4083)
RIGHT_BLINKS_MS = (3500,)


def blinks_by_side(answer: dict) -> dict[str, list[float]]:
    width = answer["video"]["width"]
    sides = {}
    for track in answer["tracks"]:
        box = track["timeline"][0]["box"]
        sides["left" if box["x"] + box["width"] / 2 < width / 2 else "right"] = track["actions"]["blinks_ms"]
    return sides


def test_blinks_are_found_where_the_eyes_close_and_nowhere_else(full_detection_client: TestClient) -> None:
    def analysed(name: str, fps: float) -> dict:
        files = {"file": (name, clip_bytes(name))}
        return full_detection_client.post(f"/v1/video?descriptors=true&fps={fps}", files=files).json()

    answer = analysed("two-people-head-pose.webm", 12.5)  # every frame
    sides = blinks_by_side(answer)
    frame_ms = 1000 / answer["video"]["fps"]
    for side, labelled in (("left", LEFT_BLINKS_MS), ("right", RIGHT_BLINKS_MS)):
        assert len(sides[side]) == len(labelled), side
        assert all(abs(found - at) <= 1.5 * frame_ms for found, at in zip(sides[side], labelled)), sides
    track = answer["tracks"][0]
    assert set(track["actions"]["means"]) == ACTIONS and track["actions"]["blinks_per_min"] > 0
    for name in ("asl-please.mp4", "one-person-head-pose.gif"):
        (track,) = analysed(name, 10)["tracks"]
        assert track["actions"]["blinks_ms"] == [], name
