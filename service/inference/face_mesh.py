"""What each face does, from MediaPipe's face mesh (478 landmarks) and its blendshapes, run in
onnxruntime: 52 named action descriptors, five derived ones, the eyes' gaze and a head pose fitted to
the whole mesh.

The mesh graph reads a 256x256 crop around the detector's box (1.5 times its long side, square, the
eyes' line made level, as MediaPipe crops a face); its landmarks are mapped back into the image, and
the blendshape graph reads 146 of them there. The head pose is the rotation of MediaPipe's canonical
face fitted to the landmarks (weighted Procrustes, orthographic), in the same axes and signs as the
five-point estimate (service.inference.head_pose). Gaze adds the eyes' turn in the head (each iris
against its eye's corners and lids, on a ball 0.9 eye widths across) to the head pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.inference.faces import Faces
from service.inference.head_pose import euler_degrees
from service.inference.model_store import StoredModel, onnxruntime_session

CROP = 256
CROP_SCALE = 1.5
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
RIGHT_EYE_TOP, RIGHT_EYE_BOTTOM, LEFT_EYE_TOP, LEFT_EYE_BOTTOM = 159, 145, 386, 374
RIGHT_IRIS, LEFT_IRIS = 468, 473  # each iris's centre
EYEBALL_RADIUS_IN_EYE_WIDTHS = 0.45
# The derived descriptors: each the mean of the blendshapes named.
DERIVED = {
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "brow_furrow": ("browDownLeft", "browDownRight"),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "eye_closure": ("eyeBlinkLeft", "eyeBlinkRight"),
    "jaw_open": ("jawOpen",),
}


@dataclass(frozen=True)
class FaceDescription:
    blendshapes: dict[str, float]
    derived: dict[str, float]
    head_pose: tuple[float, float, float]  # yaw, pitch, roll in degrees
    gaze: tuple[float, float]  # yaw, pitch in degrees, relative to the camera


def crop_transform(box: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """The 2x3 affine from the image to the mesh graph's crop: centred on the box, 1.5 times its long
    side, rotated so the eyes' line (image left eye to image right eye) is level."""
    centre = (box[:2] + box[2:]) / 2
    side = CROP_SCALE * float(max(box[2] - box[0], box[3] - box[1]))
    dx, dy = eyes[1] - eyes[0]
    angle = np.degrees(np.arctan2(dy, dx))
    rotation = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), CROP / side)
    rotation[:, 2] += CROP / 2 - centre
    return rotation


def crop_tensor(image: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The mesh graph's input: the crop as RGB in [0, 1], [1, 256, 256, 3]."""
    crop = cv2.warpAffine(image, forward, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return (crop[:, :, ::-1].astype(np.float32) / 255.0)[None]


class FaceMesh:
    def __init__(self, landmarks: StoredModel, blendshapes: StoredModel, threads: int = 0) -> None:
        self.stored = {"face_landmarks": landmarks, "face_blendshapes": blendshapes}
        self.mesh = onnxruntime_session(landmarks.onnx_path, threads)
        self.shapes = onnxruntime_session(blendshapes.onnx_path, threads)
        self.mesh_input = self.mesh.get_inputs()[0].name
        self.shapes_input = self.shapes.get_inputs()[0].name
        self.names: list[str] = blendshapes.metadata["blendshapes"]
        self.subset = np.array(blendshapes.metadata["landmarks"])
        canonical = landmarks.metadata["canonical_mesh"]
        weights = canonical["weights"]
        self.basis = np.array([int(i) for i in weights])
        self.weights = np.array([weights[i] for i in weights], dtype=np.float64)
        # Canonical axes (x right, y up, z toward the viewer) to camera axes (x right, y down, z away).
        self.canonical = np.array(canonical["vertices"], dtype=np.float64)[self.basis] * [1, -1, -1]

    def describe_all(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """Every face of the image described: the `descriptions` column of Faces."""
        described = np.empty(len(faces), dtype=object)
        for row in range(len(faces)):
            described[row] = self.describe(image, faces.boxes[row], faces.landmarks[row][:2])
        return described

    def describe(self, image: np.ndarray, box: np.ndarray, eyes: np.ndarray) -> FaceDescription:
        """One face of a BGR image, from its detector box and the two eyes' landmarks."""
        forward = crop_transform(box, eyes)
        points = self.mesh_of(crop_tensor(image, forward))
        back = cv2.invertAffineTransform(forward)
        scale = float(np.hypot(*back[:, 0]))
        xy = points[:, :2] @ back[:, :2].T + back[:, 2]
        landmarks = np.column_stack([xy, points[:, 2] * scale])
        blendshapes = self.blendshapes_of(xy)
        derived = {key: float(np.mean([blendshapes[n] for n in names])) for key, names in DERIVED.items()}
        rotation = self.fitted_rotation(landmarks)
        head = euler_degrees(rotation)
        return FaceDescription(blendshapes, derived, head, gaze(landmarks, rotation, head))

    def mesh_of(self, crop: np.ndarray) -> np.ndarray:
        """The mesh graph on one crop tensor: [478, 3] landmarks (x, y, z) in crop pixels."""
        outputs = self.mesh.run(None, {self.mesh_input: crop})
        return max(outputs, key=np.size).reshape(-1, 3).astype(np.float64)  # beside it: presence scores

    def blendshapes_of(self, xy: np.ndarray) -> dict[str, float]:
        """The blendshape graph on the landmarks' image positions: the 52 scores by name."""
        scores = self.shapes.run(None, {self.shapes_input: xy[self.subset][None].astype(np.float32)})[0].reshape(-1)
        return {name: float(s) for name, s in zip(self.names, scores)}

    def fitted_rotation(self, landmarks: np.ndarray) -> np.ndarray:
        """The rotation of the canonical face onto the landmarks: weighted orthogonal Procrustes."""
        observed = landmarks[self.basis]
        w = self.weights / self.weights.sum()
        model_centre, observed_centre = w @ self.canonical, w @ observed
        covariance = ((observed - observed_centre) * w[:, None]).T @ (self.canonical - model_centre)
        u, _, vt = np.linalg.svd(covariance)
        flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        return u @ flip @ vt


def gaze(landmarks: np.ndarray, rotation: np.ndarray, head: tuple[float, float, float]) -> tuple[float, float]:
    """Where the eyes point, relative to the camera: the head's yaw and pitch plus the eyes' own turn,
    measured in the head's frame (the rotation undone) and averaged over both eyes."""
    in_head = landmarks @ rotation  # camera axes back to the face's own
    turns = []
    for outer, inner, top, bottom, iris in (
        (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_TOP, RIGHT_EYE_BOTTOM, RIGHT_IRIS),
        (LEFT_EYE_INNER, LEFT_EYE_OUTER, LEFT_EYE_TOP, LEFT_EYE_BOTTOM, LEFT_IRIS),
    ):
        width = np.linalg.norm(in_head[inner, :2] - in_head[outer, :2])
        radius = EYEBALL_RADIUS_IN_EYE_WIDTHS * width
        centre = np.array([(in_head[outer, 0] + in_head[inner, 0]) / 2, (in_head[top, 1] + in_head[bottom, 1]) / 2])
        dx, dy = (in_head[iris, :2] - centre) / radius
        turns.append((np.degrees(np.arcsin(np.clip(dx, -1, 1))), np.degrees(np.arcsin(np.clip(dy, -1, 1)))))
    eye_yaw, eye_down = np.mean(turns, axis=0)
    return float(head[0] + eye_yaw), float(head[1] - eye_down)
