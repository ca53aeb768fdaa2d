"""Turn uploaded bytes into a BGR uint8 image, refusing anything unsafe or unusable first.

Checks run cheapest first: the magic bytes say whether it is an image at all (415), the header
gives the dimensions before any pixel is decoded (413 for decompression bombs), and only then
OpenCV decodes, applying the EXIF orientation and reducing 16-bit, grayscale and alpha inputs
to 8-bit BGR.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from service.inference.errors import ImageRejected

# Leading bytes of each accepted container; the value is the name used in messages.
MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}
ACCEPTED = "JPEG, PNG, WebP, BMP, TIFF or GIF"
# Top-level boxes a QuickTime-family file (MP4, MOV, 3GP) may start with, at byte 4.
QUICKTIME_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in MAGIC.items() if data.startswith(magic)), None)


def sniff_container(data: bytes) -> str | None:
    """The video container a clip's first bytes declare, or None; GIF counts as both an image and a clip."""
    if data[4:8] in QUICKTIME_BOXES:
        return "MP4/MOV"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "WebM/Matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "AVI"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the file header alone; Pillow parses headers lazily, without decoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                return probe.size
        except Image.DecompressionBombError:
            raise ImageRejected(413, "too_many_pixels", "image dimensions are too large") from None
        except Exception:
            raise ImageRejected(400, "undecodable", "the image header cannot be read") from None


def claimed_pixels(data: bytes) -> int:
    """Width x height as an image's header claims it, from the header alone; 0 when it is no readable image
    (decoding it later says why)."""
    if sniff_format(data) is None:
        return 0
    try:
        width, height = header_size(data)
    except ImageRejected:
        return 0
    return width * height


def check_size(data: bytes, max_bytes: int, what: str) -> None:
    """The first checks on any upload, photo or clip: not empty, not over its byte limit."""
    if not data:
        raise ImageRejected(400, "empty", "the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(413, "file_too_large", f"{what} exceeds {max_bytes} bytes")


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode an upload to an upright HxWx3 uint8 BGR array, or raise ImageRejected."""
    check_size(data, max_bytes, "the file")
    kind = sniff_format(data)
    if kind is None:
        if sniff_container(data) is not None:
            raise ImageRejected(415, "video_not_image", "this is a video: use /v1/video")
        raise ImageRejected(415, "unsupported_type", f"not an image; send {ACCEPTED}")
    width, height = header_size(data)
    if width * height > max_pixels:
        raise ImageRejected(413, "too_many_pixels", f"{width}x{height} exceeds the {max_pixels} pixel limit")
    # IMREAD_COLOR: 8-bit, 3 channels, EXIF orientation applied.
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageRejected(400, "undecodable", f"the {kind} data cannot be decoded")
    return image
