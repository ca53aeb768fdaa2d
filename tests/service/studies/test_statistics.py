"""The study statistics against textbook values and against their promises on simulated viewers:
intervals cover the truth about 95% of the time, tests reject a true null about 5% of the time."""

from __future__ import annotations

import numpy as np
import pytest

from service.studies.panel import Panel
from service.studies.report import Figures
from service.studies.statistics import (
    mann_whitney_p,
    masked_means,
    permutation_max_t,
    resample_counts,
    two_proportion,
    wilson,
)
from service.studies.trace import Trace

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605; 0/20 -> 0 to 0.1611.
    lo, hi = wilson(np.array([81, 15, 0]), np.array([263, 148, 20]))
    assert lo == pytest.approx([0.2553, 0.0624, 0.0], abs=1e-4)
    assert hi == pytest.approx([0.3662, 0.1605, 0.1611], abs=1e-4)


def test_newcombe_difference_matches_published_values() -> None:
    # Newcombe (1998), table II, example (a): 56/70 - 48/80 -> 0.0524 to 0.3339 (method 10).
    difference, (lo, hi), p = two_proportion(56, 70, 48, 80)
    assert difference == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert p < 0.01


def test_mann_whitney_is_exact_for_small_groups_and_normal_for_large_ones() -> None:
    # U = 3 for a = (1, 2, 6), b = (3, 4, 5, 7, 8): exactly 14 of the 56 splits are as extreme, p = 0.25
    # (the normal approximation would say 0.1797).
    assert mann_whitney_p(np.array([1.0, 2, 6]), np.array([3.0, 4, 5, 7, 8])) == pytest.approx(0.25)
    # Complete separation at 3 v 3: 2 of the 20 splits, p = 0.10 (the approximation said 0.0495).
    assert mann_whitney_p(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == pytest.approx(0.10)
    # Ties at 4 v 5, against all 126 splits counted one by one: 10 are as extreme.
    a, b = np.array([1.0, 1, 2, 3]), np.array([2.0, 3, 3, 4, 4])
    assert mann_whitney_p(a, b) == pytest.approx(10 / 126)
    # 12 v 15: the normal approximation with tie correction, as scipy's asymptotic test gives it.
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=12), rng.normal(0.3, size=15)
    assert mann_whitney_p(a, b) == pytest.approx(0.96108, abs=1e-4)


def test_small_proportions_use_fisher_s_exact_test() -> None:
    assert two_proportion(3, 3, 0, 3)[2] == pytest.approx(0.10)  # the z-test said 0.014
    # Fisher (1935)'s tea tasting: 3 of 4 against 1 of 4, p = 0.4857.
    assert two_proportion(3, 4, 1, 4)[2] == pytest.approx(34 / 70)


def test_exact_tests_reject_a_true_null_at_most_5_percent_of_the_time_at_3_v_3() -> None:
    rng = np.random.default_rng(4)
    rejected = [mann_whitney_p(rng.random(3), rng.random(3)) < 0.05 for _ in range(2000)]
    assert np.mean(rejected) == 0.0  # the smallest p there is at 3 v 3 is 0.10
    counts = rng.binomial(3, 0.5, (2000, 2))
    assert not any(two_proportion(int(k1), 3, int(k2), 3)[2] < 0.05 for k1, k2 in counts)


def test_a_rise_at_a_rare_second_is_found_by_the_standardised_statistic() -> None:
    """60 viewers a side, 30 seconds at a 50% share, and at one second 3% against 23%: found in 58% of
    simulated studies (the raw difference of shares found it in 8%)."""
    rng = np.random.default_rng(6)
    found = []
    for _ in range(60):
        reached = (rng.random((120, 30)) < 0.5).astype(float)
        reached[:60, 10] = rng.random(60) < 0.03
        reached[60:, 10] = rng.random(60) < 0.23
        adjusted = permutation_max_t(reached, np.ones((120, 30), bool), np.arange(120) < 60, 500, rng)
        found.append(adjusted[10] < 0.05)
    assert np.mean(found) >= 0.4


def test_mann_whitney_rejects_a_true_null_about_5_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    rejected = [mann_whitney_p(rng.beta(2, 5, 40), rng.beta(2, 5, 40)) < 0.05 for _ in range(2000)]
    assert 0.035 < np.mean(rejected) < 0.065


def test_masked_means_skip_viewers_without_a_face() -> None:
    values = np.array([[1.0, 5.0], [3.0, 7.0]])
    present = np.array([[True, False], [True, True]])
    assert masked_means(np.ones((1, 2)), values, present)[0] == pytest.approx([2.0, 7.0])


def test_per_second_test_controls_the_family_wise_error() -> None:
    """Two groups from the same truth: some second is flagged in at most about 5% of simulated studies."""
    rng = np.random.default_rng(2)
    flagged = []
    for _ in range(200):
        reached = (rng.random((60, 20)) < 0.3).astype(float)
        present = rng.random((60, 20)) > 0.1
        adjusted = permutation_max_t(reached, present, np.arange(60) < 30, 200, rng)
        flagged.append(np.nanmin(adjusted) < 0.05)
    assert np.mean(flagged) <= 0.08


def test_per_second_test_finds_a_planted_difference_only_where_planted() -> None:
    rng = np.random.default_rng(3)
    reached = (rng.random((80, 12)) < 0.2).astype(float)
    reached[:40, 6] = rng.random(40) < 0.8
    adjusted = permutation_max_t(reached, np.ones((80, 12), bool), np.arange(80) < 40, 1000, rng)
    assert adjusted[6] < 0.01 and np.all(np.delete(adjusted, 6) > 0.05)


def simulated_panel(rng: np.random.Generator, viewers: int, happy_rate: float) -> Panel:
    traces = []
    for _ in range(viewers):
        smiles = rng.random() < happy_rate
        probabilities = []
        for t in range(10):
            happy = rng.uniform(0.6, 0.95) if smiles and 4 <= t < 6 else rng.uniform(0.0, 0.2)
            rest = (1 - happy) / 6
            probabilities.append([rest, rest, rest, happy, rest, rest, rest] if rng.random() > 0.05 else None)
        traces.append(Trace(probabilities, [p is not None for p in probabilities]))
    return Panel.of(traces, 10, CLASSES)


def test_intervals_cover_the_true_share_and_peak_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(4)
    share_covered, peak_covered = [], []
    for _ in range(100):
        figures = Figures(simulated_panel(rng, 60, 0.4), threshold=0.5, resamples=1000)
        lo, hi = figures.share_ci[0][4, 3], figures.share_ci[1][4, 3]
        share_covered.append(lo <= 0.4 <= hi)
        peak = figures.summary()["happy"].peak
        peak_covered.append(peak.t_ci[0] <= 5 and peak.t_ci[1] >= 4)  # the true peak is seconds 4 and 5
    assert np.mean(share_covered) >= 0.88
    assert np.mean(peak_covered) >= 0.9


def test_bootstrap_resamples_viewers_not_frames() -> None:
    counts = resample_counts(30, 1000, np.random.default_rng(5))
    assert counts.shape == (1000, 30) and np.all(counts.sum(axis=1) == 30)
