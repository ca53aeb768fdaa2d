"""A study's valid viewers as arrays, the form every figure is computed from."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from service.studies.trace import Trace

NEGATIVE = ("angry", "disgust", "fear", "sad")
ACTIONS = ("smile", "expressiveness", "blinks")  # what a described second keeps (SecondActions.to_json)


@dataclass(frozen=True)
class Panel:
    """probabilities [viewers, seconds, classes] (NaN where the face was not found), present and attentive
    [viewers, seconds], and the face's actions [viewers, seconds, ACTIONS] (NaN where the face was not
    found or not described: sessions analysed in the viewer's browser have none)."""

    classes: tuple[str, ...]
    probabilities: np.ndarray
    present: np.ndarray
    attentive: np.ndarray
    actions: np.ndarray

    @classmethod
    def of(cls, traces: list[Trace], seconds: int, classes: tuple[str, ...]) -> Panel:
        probabilities = np.full((len(traces), seconds, len(classes)), np.nan)
        actions = np.full((len(traces), seconds, len(ACTIONS)), np.nan)
        attentive = np.zeros((len(traces), seconds), bool)
        for v, trace in enumerate(traces):
            for t, values in enumerate(trace.probabilities[:seconds]):
                if values is not None:
                    probabilities[v, t] = values
            for t, done in enumerate((trace.actions or [])[:seconds]):
                if done is not None:
                    actions[v, t] = [done[name] for name in ACTIONS]
            attentive[v, : len(trace.attentive[:seconds])] = trace.attentive[:seconds]
        return cls(classes, probabilities, ~np.isnan(probabilities[..., 0]), attentive, actions)

    @property
    def viewers(self) -> int:
        return len(self.present)

    @property
    def seconds(self) -> int:
        return self.present.shape[1]

    def first(self, seconds: int) -> Panel:
        """The same viewers over the first `seconds` only: what two stimuli of different lengths share."""
        return self._indexed(np.s_[:, :seconds])

    def only(self, viewers: np.ndarray) -> Panel:
        """The viewers chosen (a boolean mask) over the same seconds."""
        return self._indexed(viewers)

    def _indexed(self, index: object) -> Panel:
        """Every array indexed alike (viewers first, then seconds)."""
        arrays = (self.probabilities, self.present, self.attentive, self.actions)
        return Panel(self.classes, *(values[index] for values in arrays))

    def action(self, name: str) -> np.ndarray:
        """[viewers, seconds]: one of ACTIONS, NaN where the face was not found or not described."""
        return self.actions[..., ACTIONS.index(name)]

    @property
    def described(self) -> np.ndarray:
        """[viewers, seconds]: the face was found and described."""
        return ~np.isnan(self.actions[..., 0])

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
