"""The emotion model in onnxruntime: aligned 48x48 crops in, seven probabilities out."""

from __future__ import annotations

import numpy as np

from service.model_store import StoredModel, onnxruntime_session


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
        x = crops[:, None, :, :].astype(np.float32) * self.scale
        (probs,) = self.session.run(None, {self.input_name: x})
        return probs
