"""Measure the whole served pipeline on real faces: every PublicTest image placed in a photo-like
scene, sent through decode (JPEG), detect, align and classify exactly as the service does.

    python -m training.evaluate_pipeline [--data ../shared/data/fer2013] [--limit N]

Reports the share of faces detected (IoU >= 0.4 with the placed square), the pipeline accuracy on
all faces (a missed face counts as wrong) and on detected faces, next to the model's accuracy on
the raw 48x48 crops.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from service.config import get_settings
from service.ops.metrics import Metrics
from service.runtime import load_runtime
from training.data import load_split
from training.scenes import iou, place_faces

MATCH_IOU = 0.4
FACES_PER_SCENE, FACE_SIZE = 4, 144


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/fer2013")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N faces")
    args = parser.parse_args()

    runtime = load_runtime(get_settings(), Metrics())
    pipeline = runtime.pipeline
    test = load_split(Path(args.data), "test")
    images, labels = test.images.numpy(), test.labels.numpy()
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]

    raw_correct = int((pipeline.classifier(images).argmax(1) == labels).sum())
    detected = pipeline_correct = 0
    for start in range(0, len(images), FACES_PER_SCENE):
        faces = list(images[start : start + FACES_PER_SCENE])
        scene = place_faces(faces, 480, 640, FACE_SIZE, seed=start)
        jpeg = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        result = pipeline.analyse(jpeg)
        for truth, label in zip(scene.boxes, labels[start : start + FACES_PER_SCENE]):
            overlaps = [iou(truth, box) for box in result.faces.boxes]
            if overlaps and max(overlaps) >= MATCH_IOU:
                detected += 1
                pipeline_correct += int(result.faces.probabilities[int(np.argmax(overlaps))].argmax() == label)
    total = len(images)
    summary = {
        "faces": total,
        "detected": round(detected / total, 4),
        "pipeline_accuracy": round(pipeline_correct / total, 4),
        "pipeline_accuracy_on_detected": round(pipeline_correct / max(detected, 1), 4),
        "raw_crop_accuracy": round(raw_correct / total, 4),
        "emotion_model": f"{runtime.emotion().stored.name}/{runtime.emotion().stored.version}",
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
