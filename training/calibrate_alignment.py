"""Derive the 5-landmark alignment template from FER-2013 itself.

FER-2013 crops are loosely framed faces. Running the served detector on training images (upscaled
and placed in a photo-like scene) and taking where the landmarks fall in 48x48 coordinates gives
the template that frames served crops like the training crops.

    python -m training.calibrate_alignment [--data ../shared/data/fer2013] [--count 3000]

Writes `training/alignment_template.json`, which `training.export` copies into the emotion model's
metadata, where the service reads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from service.config import get_settings
from service.inference.detector import RetinaFaceDetector
from service.inference.model_store import resolve
from training.scenes import place_faces

TEMPLATE_PATH = Path(__file__).with_name("alignment_template.json")
SIZE, UPSCALE, CANVAS = 48, 4, 320


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--count", type=int, default=3000, help="training images to sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = get_settings()
    detector = RetinaFaceDetector(
        resolve(settings.model_store, settings.detector_model, settings.detector_version),
        max_side=1024,
        score_threshold=0.5,
        nms_threshold=0.4,
        min_face_size=16,
    )
    paths = sorted((args.data / "train").glob("*/*.jpg"))
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(paths), size=min(args.count, len(paths)), replace=False)

    points = []
    for index in chosen:
        face = cv2.imread(str(paths[index]), cv2.IMREAD_GRAYSCALE)
        scene = place_faces([face], CANVAS, CANVAS, SIZE * UPSCALE, seed=int(index))
        detections = detector.detect(scene.image)
        if detections:
            points.append((detections[0].landmarks - scene.boxes[0, :2]) / UPSCALE)
    points = np.array(points, dtype=np.float64)
    # The median resists the few faces whose landmarks the detector misplaces.
    template = np.median(points, axis=0)
    # Mirror-symmetrise: the model also sees flipped faces, so the template should not lean.
    mirrored = np.array([[SIZE - x, y] for x, y in template[[1, 0, 2, 4, 3]]])
    template = (template + mirrored) / 2
    result = {
        "size": SIZE,
        "landmarks": np.round(template, 3).tolist(),
        "order": ["eye (image left)", "eye (image right)", "nose", "mouth (image left)", "mouth (image right)"],
        "derived_from": f"{len(points)} of {len(chosen)} sampled FER-2013 training images, "
        f"upscaled x{UPSCALE} into {CANVAS}px scenes; median landmark positions, mirror-symmetrised",
        "detection_rate": round(len(points) / len(chosen), 4),
        "spread_px": np.round(points.std(axis=0), 2).tolist(),
    }
    TEMPLATE_PATH.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
