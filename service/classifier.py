"""The emotion model in onnxruntime: aligned 48x48 crops in, seven probabilities out."""

from __future__ import annotations

import numpy as np

from service.model_store import StoredModel, onnxruntime_session


def model_input(crops: np.ndarray, scale: float) -> np.ndarray:
    """uint8 crops [N, size, size] as the graph's float32 [N, 1, size, size].

    Evaluation calls this too: multiplying by 1/255 and dividing by 255 differ in the last bit for
    some pixels, which is enough to tip an int8 graph's rounding on a few faces.
    """
    return crops[:, None, :, :].astype(np.float32) * scale


class EmotionClassifier:
    """Wraps the exported graph, whose preprocessing contract lives in the model's metadata."""

    def __init__(self, model: StoredModel, threads: int = 0) -> None:
        meta = model.metadata
        self.classes: tuple[str, ...] = tuple(meta["classes"])
        self.size: int = int(meta["input"]["shape"][-1])
        self.scale: float = float(meta["preprocessing"]["scale"])
        self.template = np.array(meta["preprocessing"]["alignment_template"]["landmarks"], np.float32)
        self.session = onnxruntime_session(model.onnx_path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for uint8 crops [N, size, size]; one model call for all of them."""
        (probs,) = self.session.run(None, {self.input_name: model_input(crops, self.scale)})
        return probs
