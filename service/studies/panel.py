"""A study's valid viewers as arrays, the form every figure is computed from."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from service.studies.trace import Trace

NEGATIVE = ("angry", "disgust", "fear", "sad")


@dataclass(frozen=True)
class Panel:
    """probabilities [viewers, seconds, classes] (NaN where the face was not found), present and attentive
    [viewers, seconds]."""

    classes: tuple[str, ...]
    probabilities: np.ndarray
    present: np.ndarray
    attentive: np.ndarray

    @classmethod
    def of(cls, traces: list[Trace], seconds: int, classes: tuple[str, ...]) -> Panel:
        probabilities = np.full((len(traces), seconds, len(classes)), np.nan)
        attentive = np.zeros((len(traces), seconds), bool)
        for v, trace in enumerate(traces):
            for t, values in enumerate(trace.probabilities[:seconds]):
                if values is not None:
                    probabilities[v, t] = values
            attentive[v, : len(trace.attentive[:seconds])] = trace.attentive[:seconds]
        return cls(classes, probabilities, ~np.isnan(probabilities[..., 0]), attentive)

    @property
    def viewers(self) -> int:
        return len(self.present)

    @property
    def seconds(self) -> int:
        return self.present.shape[1]

    def first(self, seconds: int) -> Panel:
        """The same viewers over the first `seconds` only: what two stimuli of different lengths share."""
        cut = slice(0, seconds)
        return Panel(self.classes, self.probabilities[:, cut], self.present[:, cut], self.attentive[:, cut])

    def reached(self, threshold: float) -> np.ndarray:
        """[viewers, seconds, classes]: the viewer's probability at or above the threshold (False without a face)."""
        return np.nan_to_num(self.probabilities, nan=-1.0) >= threshold

    def valence(self) -> np.ndarray:
        """[viewers, seconds]: happy minus the negative emotions, NaN without a face."""
        index = {c: i for i, c in enumerate(self.classes)}
        negative = sum(self.probabilities[..., index[c]] for c in NEGATIVE if c in index)
        return self.probabilities[..., index["happy"]] - negative

    def viewer_means(self) -> np.ndarray:
        """[viewers, classes]: each viewer's mean probability over the seconds their face was found."""
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # viewers never seen have no mean
            return np.nanmean(self.probabilities, axis=1)
