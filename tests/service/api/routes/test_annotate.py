import cv2
import numpy as np
from fastapi.testclient import TestClient

from service.inference.annotate import EMOTION_COLOURS
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces


def test_annotated_jpeg_marks_each_face_in_its_emotion_colour(client: TestClient) -> None:
    scene = place_faces(fer_faces("happy", 2), 360, 640, 150, seed=50)
    upload = [("files", ("scene.jpg", jpeg(scene.image), "image/jpeg"))]
    predicted = client.post("/v1/predict", files=upload)
    assert predicted.status_code == 200, predicted.text
    faces = predicted.json()["images"][0]["faces"]
    response = client.post("/v1/annotate", files=upload)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == scene.image.shape
    for face in faces:
        box = face["box"]
        x, y = round(box["x"]), round(box["y"] + box["height"] / 2)  # the middle of the left edge
        colour = np.array(EMOTION_COLOURS[face["dominant_emotion"]])
        assert np.abs(drawn[y, x - 1 : x + 2].astype(int) - colour).sum(axis=1).min() < 90


def test_png_on_request_and_one_file_only(client: TestClient) -> None:
    image = jpeg(place_faces(fer_faces("sad", 1), 200, 200, 120, seed=51).image)
    png = client.post("/v1/annotate?format=png", files=[("files", ("a.jpg", image, "image/jpeg"))])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    two = client.post("/v1/annotate", files=[("files", ("a.jpg", image, "image/jpeg"))] * 2)
    assert two.status_code == 422 and two.json()["error"]["code"] == "too_many_files"
    bad = client.post("/v1/annotate?format=gif", files=[("files", ("a.jpg", image, "image/jpeg"))])
    assert bad.status_code == 422
