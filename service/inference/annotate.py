"""Draw what the service saw: a box per face in its dominant emotion's colour, a label with the
emotion and its probability, and the five landmarks. Line widths and text scale with the image,
so labels stay legible on a thumbnail and on a 24-megapixel photo alike."""

from __future__ import annotations

import cv2
import numpy as np

from service.inference.faces import Faces

# BGR, one distinct hue per emotion.
EMOTION_COLOURS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 150),
    "happy": (0, 200, 255),
    "sad": (200, 120, 30),
    "surprise": (0, 140, 255),
    "neutral": (170, 170, 170),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_faces(image: np.ndarray, faces: Faces, classes: tuple[str, ...]) -> np.ndarray:
    """A copy of the BGR image with every classified face annotated."""
    canvas = image.copy()
    base = max(canvas.shape[:2])
    for box, landmarks, probs in zip(faces.boxes, faces.landmarks, faces.probabilities):
        emotion = classes[int(np.argmax(probs))]
        colour = EMOTION_COLOURS.get(emotion, (255, 255, 255))
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        face_size = max(x2 - x1, y2 - y1)
        thickness = max(1, round(max(base / 400, face_size / 60)))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        for x, y in landmarks:
            cv2.circle(canvas, (round(float(x)), round(float(y))), thickness + 1, colour, -1, cv2.LINE_AA)
        label = f"{emotion} {float(np.max(probs)):.0%}"
        scale = max(0.4, face_size / 220)
        (width, height), baseline = cv2.getTextSize(label, FONT, scale, thickness)
        top = y1 - height - baseline - 2 * thickness if y1 - height - baseline > 0 else y2  # above, or below
        cv2.rectangle(
            canvas, (x1, top), (x1 + width + 2 * thickness, top + height + baseline + 2 * thickness), colour, -1
        )
        cv2.putText(
            canvas, label, (x1 + thickness, top + height + thickness), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    return canvas


def encode(image: np.ndarray, kind: str) -> bytes:
    """JPEG (quality 90) or PNG bytes."""
    ext, params = (".png", []) if kind == "png" else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    ok, buffer = cv2.imencode(ext, image, params)
    if not ok:
        raise RuntimeError(f"cannot encode {kind}")
    return buffer.tobytes()
