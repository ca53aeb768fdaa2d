"""Real FER-2013 faces, and images made from them as a client would send them."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from tests.helpers.data import fer2013_dir


def fer_faces(emotion: str, count: int, split: str = "test") -> list[np.ndarray]:
    """The first `count` real grayscale faces of one class."""
    paths = sorted((fer2013_dir() / split / emotion).glob("*.jpg"))[:count]
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


# The transpose that undoes each EXIF orientation (1 to 8), as a camera would have stored the pixels.
EXIF_STORED = {
    1: None,
    2: Image.FLIP_LEFT_RIGHT,
    3: Image.ROTATE_180,
    4: Image.FLIP_TOP_BOTTOM,
    5: Image.TRANSPOSE,
    6: Image.ROTATE_90,
    7: Image.TRANSVERSE,
    8: Image.ROTATE_270,
}


def exif_jpeg(upright_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose pixels are stored turned and whose EXIF orientation tag turns them upright again."""
    stored = Image.fromarray(cv2.cvtColor(upright_bgr, cv2.COLOR_BGR2RGB))
    if EXIF_STORED[orientation] is not None:
        stored = stored.transpose(EXIF_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()
