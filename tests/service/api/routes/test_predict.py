import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.schemas import PredictResponse
from tests.helpers.faces import exif_jpeg, fer_faces, jpeg
from training.scenes import iou, place_faces

MATCH_IOU = 0.4


def upload(*images: bytes, name: str = "photo.jpg", kind: str = "image/jpeg") -> list[tuple]:
    return [("files", (name, data, kind)) for data in images]


def box_corners(face: dict) -> np.ndarray:
    b = face["box"]
    return np.array([b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]])


def sample(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_one_face(client: TestClient) -> None:
    scene = place_faces(fer_faces("happy", 1), 360, 480, 160, seed=10)
    response = client.post("/v1/predict", files=upload(jpeg(scene.image)))
    assert response.status_code == 200
    body = response.json()
    PredictResponse.model_validate(body)
    assert response.headers["x-request-id"] == body["request_id"]
    assert set(body["models"]) == {"detector", "emotion"}
    (image,) = body["images"]
    assert (image["width"], image["height"], image["filename"]) == (480, 360, "photo.jpg")
    (face,) = image["faces"]
    assert iou(box_corners(face), scene.boxes[0]) >= MATCH_IOU
    emotions = face["emotions"]
    assert list(emotions) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert sum(emotions.values()) == pytest.approx(1, abs=1e-4)
    assert face["dominant_emotion"] == max(emotions, key=emotions.get)


def test_every_face_of_every_image_in_upload_order(client: TestClient) -> None:
    crowd = place_faces(fer_faces("happy", 6), 480, 720, 120, seed=11)
    single = place_faces(fer_faces("angry", 1), 300, 300, 150, seed=12)
    empty = place_faces([], 240, 320, 100, seed=13)
    response = client.post("/v1/predict", files=upload(jpeg(crowd.image), jpeg(empty.image), jpeg(single.image)))
    assert response.status_code == 200
    images = response.json()["images"]
    assert [len(i["faces"]) for i in images] == [6, 0, 1]
    for truth in crowd.boxes:
        assert max(iou(box_corners(f), truth) for f in images[0]["faces"]) >= MATCH_IOU
    scores = [f["detection_score"] for f in images[0]["faces"]]
    assert scores == sorted(scores, reverse=True)


def test_alias_answers_like_the_versioned_route(client: TestClient) -> None:
    scene = jpeg(place_faces(fer_faces("sad", 2), 300, 500, 140, seed=14).image)
    versioned = client.post("/v1/predict", files=upload(scene)).json()["images"]
    alias = client.post("/predict", files=upload(scene)).json()["images"]
    assert versioned == alias


def test_sideways_phone_photo_is_turned_upright(client: TestClient) -> None:
    """Pixels stored rotated with EXIF orientation 6: the face is found, in upright coordinates."""
    scene = place_faces(fer_faces("happy", 1), 300, 400, 150, seed=15)
    (image,) = client.post("/v1/predict", files=upload(exif_jpeg(scene.image, 6))).json()["images"]
    assert (image["width"], image["height"]) == (400, 300)
    assert iou(box_corners(image["faces"][0]), scene.boxes[0]) >= MATCH_IOU


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        (upload(b"<html>hello</html>", name="x.jpg"), 415, "unsupported_type"),
        (upload(b"\xff\xd8\xff\xe0" + b"\x00" * 64), 400, "undecodable"),
        (upload(b""), 400, "empty"),
        ([("image", ("a.jpg", b"x", "image/jpeg"))], 422, "unknown_parameter"),  # the field is `files`
    ],
)
def test_bad_input_gets_a_clear_json_error(client: TestClient, files: list, status: int, code: str) -> None:
    response = client.post("/v1/predict", files=files)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    follow_up = client.post("/v1/predict", files=upload(jpeg(place_faces([], 100, 100, 50).image)))
    assert follow_up.status_code == 200


def test_no_body_at_all(client: TestClient) -> None:
    response = client.post("/v1/predict")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_bad_file_is_named_by_position(client: TestClient) -> None:
    good = jpeg(place_faces([], 100, 100, 50).image)
    response = client.post("/v1/predict", files=upload(good, b"not an image at all"))
    assert response.status_code == 415
    assert response.json()["error"]["message"].startswith("files[1]:")


def test_limits_on_files_and_sizes(settings: Settings) -> None:
    small = settings.model_copy(update={"max_files": 2, "max_request_bytes": 200_000, "max_image_pixels": 500_000})
    image = jpeg(place_faces([], 200, 200, 50).image)
    with TestClient(create_app(small)) as client:
        too_many = client.post("/v1/predict", files=upload(image, image, image))
        assert (too_many.status_code, too_many.json()["error"]["code"]) == (422, "too_many_files")
        noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
        too_big = client.post("/v1/predict", files=upload(cv2.imencode(".png", noise)[1].tobytes()))
        assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "request_too_large")
        huge = client.post("/v1/predict", files=upload(jpeg(np.zeros((1000, 1000, 3), np.uint8))))
        assert (huge.status_code, huge.json()["error"]["code"]) == (413, "too_many_pixels")
        assert client.post("/v1/predict", files=upload(image)).status_code == 200


def test_metrics_move_with_traffic(client: TestClient) -> None:
    before = {
        "ok": sample(client, "emotion_http_requests_total", method="POST", route="/v1/predict", status="200"),
        "faces": sample(client, "emotion_faces_per_image_sum"),
        "detect": sample(client, "emotion_stage_duration_seconds_count", stage="detect"),
        "classify": sample(client, "emotion_stage_duration_seconds_count", stage="classify"),
        "rejected": sample(client, "emotion_images_rejected_total", reason="unsupported_type"),
        "batches": sample(client, "emotion_batch_size_count", model="emotion"),
    }
    scene = place_faces(fer_faces("fear", 2), 300, 500, 140, seed=16)
    assert client.post("/v1/predict", files=upload(jpeg(scene.image))).status_code == 200
    assert client.post("/v1/predict", files=upload(b"plain text")).status_code == 415
    assert sample(client, "emotion_http_requests_total", method="POST", route="/v1/predict", status="200") == (
        before["ok"] + 1
    )
    assert sample(client, "emotion_faces_per_image_sum") == before["faces"] + 2
    assert sample(client, "emotion_stage_duration_seconds_count", stage="detect") == before["detect"] + 1
    assert sample(client, "emotion_stage_duration_seconds_count", stage="classify") == before["classify"] + 1
    assert sample(client, "emotion_batch_size_count", model="emotion") == before["batches"] + 1
    assert sample(client, "emotion_images_rejected_total", reason="unsupported_type") == before["rejected"] + 1


def test_body_without_declared_length_is_cut_off(settings: Settings) -> None:
    """A chunked upload has no Content-Length; the limit must hold while it streams."""
    small = settings.model_copy(update={"max_request_bytes": 50_000})
    boundary = "b0undary"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG\r\n\x1a\n"
        + b"\x00" * 100_000
    )
    payload += f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    with TestClient(create_app(small)) as client:
        response = client.post(
            "/v1/predict", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
