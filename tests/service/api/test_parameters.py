"""One rule for options: every /v1 route refuses a query parameter or form field it does not declare,
so an option sent the wrong way is an error, never a silent default."""

from fastapi.testclient import TestClient

from tests.helpers.clips import clip_bytes
from tests.helpers.faces import fer_faces, jpeg
from training.scenes import place_faces

PHOTO = jpeg(place_faces(fer_faces("happy", 1), 240, 320, 120, seed=3).image)


def refusal(response) -> str:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "unknown_parameter"
    return response.json()["error"]["message"]


def test_an_option_sent_as_a_form_field_where_the_route_reads_the_query_is_refused(client: TestClient) -> None:
    clip = {"file": ("c.mkv", clip_bytes("asl-thanks.mkv"))}
    message = refusal(client.post("/v1/video", files=clip, data={"model": "emotion-fast"}))
    assert "form field 'model' (this route reads it from the query)" in message
    assert client.post("/v1/video", files=clip, params={"model": "emotion-fast"}).status_code == 200


def test_misspelt_options_are_refused_on_every_kind_of_route(client: TestClient) -> None:
    photo = {"files": ("a.jpg", PHOTO)}
    assert "query parameter 'modle'" in refusal(client.post("/v1/predict", files=photo, params={"modle": "x"}))
    assert "form field 'callback'" in refusal(
        client.post("/v1/jobs", files={"file": ("a.jpg", PHOTO)}, data={"callback": "https://x.example/h"})
    )
    assert "query parameter 'state'" in refusal(client.get("/v1/jobs", params={"state": "queued"}))
    assert "query parameter 'format'" in refusal(client.get("/v1/models", params={"format": "yaml"}))
    # Declared options, in the query or the form as each route reads them, pass.
    assert client.post("/v1/predict", files=photo, params={"model": "emotion-fast"}).status_code == 200
    assert client.get("/v1/jobs", params={"status": "queued", "limit": 5}).status_code == 200
