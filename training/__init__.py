"""Offline training, evaluation and ONNX export of the emotion model (needs the `train` extra)."""
