import zlib

import cv2
import numpy as np
import pytest

from service.inference.errors import ImageRejected
from service.inference.imaging import decode_image, sniff_format
from tests.helpers.faces import exif_jpeg, fer_faces

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

LIMITS = {"max_bytes": 10 * 2**20, "max_pixels": 40_000_000}


@pytest.fixture(scope="module")
def face_bgr() -> np.ndarray:
    face = cv2.resize(fer_faces("happy", 1)[0], (96, 64))  # non-square, so rotations show
    return cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_decodes_each_format(face_bgr: np.ndarray, ext: str) -> None:
    data = cv2.imencode(ext, face_bgr)[1].tobytes()
    image = decode_image(data, **LIMITS)
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8


def test_grayscale_rgba_and_16_bit_become_8_bit_bgr(face_bgr: np.ndarray) -> None:
    gray = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2BGRA)
    deep = face_bgr.astype(np.uint16) * 257
    for variant in (gray, rgba, deep):
        image = decode_image(cv2.imencode(".png", variant)[1].tobytes(), **LIMITS)
        assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    decoded_deep = decode_image(cv2.imencode(".png", deep)[1].tobytes(), **LIMITS)
    assert np.abs(decoded_deep.astype(int) - face_bgr).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(face_bgr: np.ndarray, orientation: int) -> None:
    """An image stored sideways with an EXIF tag comes out upright, as a phone photo would."""
    image = decode_image(exif_jpeg(face_bgr, orientation), **LIMITS)
    assert image.shape == face_bgr.shape
    assert np.abs(image.astype(int) - face_bgr).mean() < 6


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"", 400, "empty"),
        (b"<html><body>not an image</body></html>", 415, "unsupported_type"),
        (b"%PDF-1.7 not an image", 415, "unsupported_type"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 400, "undecodable"),
    ],
)
def test_rejections(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **LIMITS)
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_dimensions_are_checked_before_decoding() -> None:
    """A tiny PNG whose header claims 30000x30000 is refused without allocating 2.7 GB."""
    header = cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()
    bomb = bytearray(header)
    bomb[16:24] = (30000).to_bytes(4, "big") * 2  # IHDR width and height
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")  # a valid chunk checksum
    with pytest.raises(ImageRejected) as caught:
        decode_image(bytes(bomb), **LIMITS)
    assert caught.value.status == 413


def test_file_size_limit(face_bgr: np.ndarray) -> None:
    data = cv2.imencode(".png", face_bgr)[1].tobytes()
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, max_bytes=len(data) - 1, max_pixels=LIMITS["max_pixels"])
    assert caught.value.status == 413


def test_sniffs_webp_by_riff_container() -> None:
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WebP"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
