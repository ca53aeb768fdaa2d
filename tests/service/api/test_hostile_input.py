"""A corpus of broken, hostile and unusual uploads: each gets its documented answer, the service
keeps serving, and nothing the client sent reaches the logs."""

from __future__ import annotations

import io
import logging
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image
from tests.helpers.faces import exif_jpeg, fer_faces
from training.scenes import place_faces

MARKER = "QX7-client-marker"  # appears in names and bytes, must never appear in logs
SCENE = place_faces(fer_faces("happy", 1), 240, 320, 120, seed=30).image


def encoded(ext: str, image: np.ndarray = SCENE) -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


def pil_bytes(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(encoded(".png", np.zeros((4, 4), np.uint8)))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A real one-frame GIF whose logical screen claims huge dimensions."""
    data = bytearray(pil_bytes(Image.new("L", (4, 4)), "GIF"))
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes(data)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", encoded(".jpg"))
    return buffer.getvalue()


def animated(kind: str) -> bytes:
    frames = [Image.fromarray(cv2.cvtColor(SCENE, cv2.COLOR_BGR2RGB)), Image.new("RGB", (320, 240), "white")]
    return pil_bytes(frames[0], kind, save_all=True, append_images=frames[1:], duration=100)


def one(data: bytes, name: str = f"{MARKER}.jpg", kind: str = "image/jpeg") -> list[tuple]:
    return [("files", (name, data, kind))]


RGB = Image.fromarray(cv2.cvtColor(SCENE, cv2.COLOR_BGR2RGB))
JPEG = encoded(".jpg")
PNG = encoded(".png")

# (case, files, status, error code or number of faces expected in the first image)
CORPUS = [
    ("random bytes", one(np.random.default_rng(1).bytes(4096)), 415, "unsupported_type"),
    ("0-byte file", one(b""), 400, "empty"),
    ("truncated JPEG", one(JPEG[: len(JPEG) // 2]), 400, "undecodable"),
    ("truncated PNG", one(PNG[: len(PNG) // 2]), 400, "undecodable"),
    ("JPEG header only", one(JPEG[:20]), 400, "undecodable"),
    ("HTML posing as JPEG", one(f"<html>{MARKER}</html>".encode()), 415, "unsupported_type"),
    (
        "SVG",
        one(b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>', kind="image/svg+xml"),
        415,
        "unsupported_type",
    ),
    ("PDF", one(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF", kind="application/pdf"), 415, "unsupported_type"),
    ("ZIP holding a JPEG", one(zip_bytes(), kind="application/zip"), 415, "unsupported_type"),
    ("PNG header claiming 100000x100000", one(png_claiming(100_000, 100_000)), 413, "too_many_pixels"),
    ("PNG header claiming 9000x9000", one(png_claiming(9000, 9000)), 413, "too_many_pixels"),
    ("GIF claiming 65535x65535", one(gif_claiming(65535, 65535)), 413, "too_many_pixels"),
    ("PNG declared as JPEG (content decides)", one(PNG, kind="image/jpeg"), 200, 1),
    ("JPEG declared as text", one(JPEG, kind="text/plain"), 200, 1),
    ("1x1 pixel", one(encoded(".png", np.zeros((1, 1, 3), np.uint8))), 200, 0),
    ("16-bit PNG", one(encoded(".png", SCENE.astype(np.uint16) * 257)), 200, 1),
    ("CMYK JPEG", one(pil_bytes(RGB.convert("CMYK"), "JPEG", quality=92)), 200, 1),
    ("grayscale JPEG", one(encoded(".jpg", cv2.cvtColor(SCENE, cv2.COLOR_BGR2GRAY))), 200, 1),
    ("RGBA PNG", one(encoded(".png", cv2.cvtColor(SCENE, cv2.COLOR_BGR2BGRA))), 200, 1),
    ("BMP", one(encoded(".bmp")), 200, 1),
    ("TIFF", one(encoded(".tiff")), 200, 1),
    ("WebP", one(encoded(".webp")), 200, 1),
    ("animated GIF (first frame)", one(animated("GIF")), 200, 1),
    ("animated WebP (first frame)", one(animated("WEBP")), 200, 1),
    ("long file name", one(JPEG, name="x" * 900 + ".jpg"), 200, 1),
    ("file name past the multipart header limit", one(JPEG, name="x" * 20000 + ".jpg"), 400, "bad_request"),
    ("non-ASCII file name", one(JPEG, name="лицо-😀-顔.jpg"), 200, 1),
    ("file sent as a text field", [("files", (None, "not a file"))], 422, "invalid_request"),
    ("wrong field name", [("image", ("a.jpg", JPEG, "image/jpeg"))], 422, "unknown_parameter"),
    ("same field twice", one(JPEG) + one(PNG), 200, 1),
    ("more files than allowed", one(JPEG) * 17, 422, "too_many_files"),
    ("file over the size limit", one(b"\xff\xd8\xff" + b"\x00" * (10 * 2**20 + 1)), 413, "file_too_large"),
]


@pytest.mark.parametrize(("files", "status", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_corpus(client: TestClient, caplog: pytest.LogCaptureFixture, files: list, status: int, expected) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/predict", files=files)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    if status == 200:
        assert len(response.json()["images"][0]["faces"]) == expected
    else:
        assert response.json()["error"]["code"] == expected
    assert MARKER not in caplog.text
    assert client.post("/v1/predict", files=one(JPEG)).status_code == 200  # still serving


def test_no_multipart_at_all(client: TestClient) -> None:
    for kwargs in (
        {},
        {"content": JPEG, "headers": {"content-type": "image/jpeg"}},
        {"json": {"files": "x"}},
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
    ):
        response = client.post("/v1/predict", **kwargs)
        assert response.status_code in (400, 422), kwargs
        assert response.json()["error"]["code"] in ("invalid_request", "bad_request")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_over_http(client: TestClient, orientation: int) -> None:
    response = client.post("/v1/predict", files=one(exif_jpeg(SCENE, orientation)))
    (image,) = response.json()["images"]
    assert (image["width"], image["height"]) == (320, 240)
    assert len(image["faces"]) == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=2048)
    | st.builds(lambda cut, noise: JPEG[:cut] + noise, st.integers(0, len(JPEG)), st.binary(max_size=64))
)
def test_decode_never_fails_unexpectedly(data: bytes) -> None:
    """Any bytes: an image, or an ImageRejected with a 4xx status; never another exception."""
    try:
        image = decode_image(data, max_bytes=10 * 2**20, max_pixels=40_000_000)
    except ImageRejected as rejection:
        assert 400 <= rejection.status < 500
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
