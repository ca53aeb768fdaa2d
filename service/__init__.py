"""Emotion-recognition inference service: faces in, seven emotion probabilities out."""

__version__ = "0.1.0"
