"""Peaks and the best moment with a planted truth, where they used to mislead: a lone viewer's smile,
a single smile among thirty, a plateau, two equal peaks far apart."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.studies.report import study_report
from tests.helpers.sessions import CALM, CLASSES, SMILE, custom, study

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

SETTINGS = Settings().studies  # a second needs 10 faces, or 30% of the viewers


def report(views: list, seconds: int) -> dict:
    return study_report(study("s", seconds), views, CLASSES, 0.5, SETTINGS).model_dump()


def test_a_lone_viewer_s_smile_is_not_the_best_moment() -> None:
    """12 of 20 smile at 4 s (60%); at 9 s only one viewer is seen, and smiles (100%)."""

    def at(viewer: int, t: int) -> list[float] | None:
        if t == 9:
            return SMILE if viewer == 0 else None
        return SMILE if t == 4 and viewer < 12 else CALM

    figures = report(custom(20, 10, at), 10)
    best = figures["best_moment"]
    assert best["t"] == 4 and best["share"] == 0.6 and best["n"] == 20
    assert figures["quality"]["min_viewers_per_second"] == 10


def test_a_single_smile_has_no_interval_made_of_ties() -> None:
    """One of 30 viewers smiles once, at 5 s: resamples without that viewer have no peak, and do not
    spread the interval over the whole stimulus."""
    figures = report(custom(30, 30, lambda v, t: SMILE if (v, t) == (0, 5) else CALM), 30)
    peak = figures["summary"]["happy"]["peak"]
    assert peak["t"] == 5 and peak["t_ci"] == (5.0, 5.0)
    assert 0.5 < peak["resamples_with_peak"] < 0.75  # a viewer is in about 63% of resamples


def test_a_plateau_is_reported_as_one() -> None:
    """The share is tied at seconds 0, 1, 4 and 5: the peak is the run 0 to 1, not a second picked by a tie-break."""
    figures = report(custom(20, 8, lambda v, t: SMILE if t in (0, 1, 4, 5) and v < 5 else CALM), 8)
    peak = figures["summary"]["happy"]["peak"]
    assert (peak["t"], peak["t_from"], peak["t_to"]) == (0, 0, 1) and peak["share"] == 0.25


def test_two_equal_peaks_far_apart_name_no_best_moment() -> None:
    """Ten viewers smile at 3 s and ten others at 25 s, of 40: the peak could be at either end."""

    def at(viewer: int, t: int) -> list[float]:
        return SMILE if (t == 3 and viewer < 10) or (t == 25 and 10 <= viewer < 20) else CALM

    figures = report(custom(40, 30, at), 30)
    assert figures["best_moment"] is None
    assert "more than half the stimulus" in figures["best_moment_reason"]


def test_nobody_smiling_or_too_few_faces_say_why() -> None:
    calm = report(custom(20, 5, lambda v, t: CALM), 5)
    assert calm["best_moment"] is None and "no viewer reached" in calm["best_moment_reason"]
    few = report(custom(4, 5, lambda v, t: SMILE), 5)
    assert few["best_moment"] is None and "at least 10 viewers" in few["best_moment_reason"]
