"""Study sessions made by hand, with a planted truth, for testing figures without a service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from service.options import SessionOrigin
from service.studies.schema import ANALYSED, Study
from service.studies.store import SessionView
from service.studies.trace import Trace

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SMILE = [0.02, 0.02, 0.02, 0.86, 0.02, 0.02, 0.04]
ORIGIN = SessionOrigin()
CALM = [0.02, 0.02, 0.02, 0.04, 0.02, 0.02, 0.86]


def study(study_id: str, seconds: int) -> Study:
    return Study(id=study_id, owner="-", name=study_id, stimulus_duration_s=seconds, events=[])


def session(
    index: int,
    probabilities: list[list[float] | None],
    attributes: dict | None = None,
    actions: list[dict | None] | None = None,
) -> SessionView:
    """A valid viewer, attending whenever their face is found (`actions`: per second, as a trace keeps them)."""
    trace = Trace(probabilities, [p is not None for p in probabilities], actions)
    created = datetime(2026, 1, 1)
    return SessionView(
        f"s{index}", f"j{index}", f"v{index}", 0.0, created, ANALYSED, None, trace, None, attributes or {}, ORIGIN
    )


def viewers(count: int, seconds: int, smiling_at: set[int]) -> list[SessionView]:
    """`count` viewers seen throughout, smiling at the given seconds and calm otherwise."""
    return [session(i, [SMILE if t in smiling_at else CALM for t in range(seconds)]) for i in range(count)]


def custom(count: int, seconds: int, at: Callable[[int, int], list[float] | None]) -> list[SessionView]:
    """`count` viewers whose probabilities at second t are at(viewer, t) (None: face not found)."""
    return [session(i, [at(i, t) for t in range(seconds)]) for i in range(count)]
