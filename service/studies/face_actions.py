"""What a viewer's face does in each second of a recording, from the face mesh's descriptions of the
main face's frames: the smile, the expressiveness, the blinks and where the eyes point.

Expressiveness is how far the face's most moved expression blendshape is above the viewer's own
resting level (its median over the recording): 0 for a face at rest, whatever that face looks like at
rest, up to 1. The eyes' blendshapes (blinks, looking around) and `_neutral` are not expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.inference.face_mesh import FaceDescription
from service.tracking.blinks import blink_times

NOT_EXPRESSIONS = ("_neutral", "eyeBlink", "eyeLook")


@dataclass(frozen=True)
class SecondActions:
    """One second of the main face: medians over its frames, and the blinks that began in it."""

    smile: float
    expressiveness: float
    blinks: int
    gaze_yaw_deg: float  # median |yaw| of the gaze

    def to_json(self) -> dict:
        return {"smile": round(self.smile, 4), "expressiveness": round(self.expressiveness, 4), "blinks": self.blinks}


@dataclass(frozen=True)
class DescribedFrames:
    """The main face's frames through the recording, each as the numbers the seconds are made of."""

    smile: np.ndarray
    expressiveness: np.ndarray
    gaze_yaw_deg: np.ndarray
    blinks_ms: np.ndarray

    @classmethod
    def of(cls, times_ms: np.ndarray, descriptions: np.ndarray) -> DescribedFrames:
        """From the frames' times (in order) and their FaceDescriptions."""
        described: list[FaceDescription] = list(descriptions)
        names = [n for n in described[0].blendshapes if not n.startswith(NOT_EXPRESSIONS)]
        shapes = np.array([[d.blendshapes[n] for n in names] for d in described])
        resting = np.median(shapes, axis=0)
        closure = np.array([d.derived["eye_closure"] for d in described])
        return cls(
            smile=np.array([d.derived["smile"] for d in described]),
            expressiveness=np.clip(shapes - resting, 0, 1).max(axis=1),
            gaze_yaw_deg=np.abs([d.gaze[0] for d in described]),
            blinks_ms=blink_times(times_ms, closure),
        )

    def second(self, rows: np.ndarray, blinks: int) -> SecondActions | None:
        """The second made of the frames `rows` (a mask), with the blinks that began in it; None without frames."""
        if not rows.any():
            return None
        return SecondActions(
            smile=float(np.median(self.smile[rows])),
            expressiveness=float(np.median(self.expressiveness[rows])),
            blinks=blinks,
            gaze_yaw_deg=float(np.median(self.gaze_yaw_deg[rows])),
        )
