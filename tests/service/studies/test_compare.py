"""Comparisons with a planted truth, where small groups and unequal lengths used to mislead: exact tests
at 3 v 3, statistics on the common seconds with a warning, and an empty study refused."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.studies.compare import EmptyStudy, compare_studies
from tests.helpers.sessions import CLASSES, study, viewers

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

SETTINGS = Settings().studies  # 1,000 resamples


def test_three_against_three_in_complete_separation_is_not_significant() -> None:
    """Every viewer of a smiles, none of b: exact p = 0.10 both ways (the approximations said 0.014 and 0.0495)."""
    comparison = compare_studies(
        (study("a", 5), study("b", 5)), (viewers(3, 5, {0, 1, 2, 3, 4}), viewers(3, 5, set())), CLASSES, 0.5, SETTINGS
    )
    happy = comparison.emotions["happy"]
    assert happy.ever_share == (1.0, 0.0)
    assert happy.ever_share_p == pytest.approx(0.10) and happy.ever_share_test == "fisher"
    assert happy.mean_p == pytest.approx(0.10) and happy.mean_test == "exact"
    assert comparison.viewers == (3, 3) and any("fewer than 10 viewers" in w for w in comparison.warnings)


def test_stimuli_of_different_lengths_are_compared_on_their_common_seconds() -> None:
    """a's viewers smile only at 8 s, past the end of b's 6 s stimulus: no difference on what both cover."""
    comparison = compare_studies(
        (study("a", 10), study("b", 6)), (viewers(12, 10, {8}), viewers(12, 6, set())), CLASSES, 0.5, SETTINGS
    )
    assert comparison.seconds == 6
    assert comparison.emotions["happy"].ever_share == (0.0, 0.0)
    assert comparison.emotions["happy"].ever_share_test == "z"
    assert any("differ in length" in w for w in comparison.warnings)


def test_a_study_without_valid_viewers_cannot_be_compared() -> None:
    with pytest.raises(EmptyStudy):
        compare_studies((study("a", 5), study("b", 5)), (viewers(3, 5, set()), []), CLASSES, 0.5, SETTINGS)
