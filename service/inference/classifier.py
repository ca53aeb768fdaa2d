"""The emotion model in onnxruntime: aligned 48x48 crops in, seven probabilities out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.inference.model_store import StoredModel, onnxruntime_session


def model_input(crops: np.ndarray, scale: float) -> np.ndarray:
    """uint8 crops [N, size, size] as the graph's float32 [N, 1, size, size].

    Evaluation calls this too: multiplying by 1/255 and dividing by 255 differ in the last bit for
    some pixels, which is enough to tip an int8 graph's rounding on a few faces.
    """
    return crops[:, None, :, :].astype(np.float32) * scale


@dataclass(frozen=True)
class CropSpec:
    """The crops a model wants, from its metadata: enough to align faces without loading the graph."""

    classes: tuple[str, ...]
    size: int
    scale: float
    template: np.ndarray  # landmark positions in the aligned crop

    @classmethod
    def of(cls, model: StoredModel) -> CropSpec:
        meta = model.metadata
        return cls(
            classes=tuple(meta["classes"]),
            size=int(meta["input"]["shape"][-1]),
            scale=float(meta["preprocessing"]["scale"]),
            template=np.array(meta["preprocessing"]["alignment_template"]["landmarks"], np.float32),
        )


class EmotionClassifier:
    """Wraps the exported graph, whose preprocessing contract lives in the model's metadata."""

    def __init__(self, model: StoredModel, threads: int = 0) -> None:
        self.spec = spec = CropSpec.of(model)
        self.classes, self.size, self.scale, self.template = spec.classes, spec.size, spec.scale, spec.template
        self.session = onnxruntime_session(model.onnx_path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for uint8 crops [N, size, size]; one model call for all of them."""
        (probs,) = self.session.run(None, {self.input_name: model_input(crops, self.scale)})
        return probs
