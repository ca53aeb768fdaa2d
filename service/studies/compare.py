"""Two studies compared, viewers as the unit, on the seconds both cover (the tests are stated in
docs/studies.md)."""

from __future__ import annotations

import numpy as np

from service.studies.models import DifferingSecond, EmotionComparison, StudyComparison
from service.studies.panel import Panel
from service.studies.report import FIGURES_VERSION, interval, number, valid_panel
from service.studies.schema import Study
from service.studies.statistics import (
    EXACT_RANK_SUM_MAX,
    SEED,
    SMALL_GROUP,
    mann_whitney_p,
    masked_means,
    percentile_interval,
    permutation_max_t,
    resample_counts,
    two_proportion,
)
from service.studies.store import SessionView

ALPHA = 0.05


class EmptyStudy(Exception):
    """A study in a comparison has no valid viewer: there is nothing to compare."""


def compare_studies(
    studies: tuple[Study, Study],
    views: tuple[list[SessionView], list[SessionView]],
    classes: tuple[str, ...],
    threshold: float,
    resamples: int,
) -> StudyComparison:
    """The comparison of two studies' valid viewers, with what a reader should know before trusting it."""
    a, b = (valid_panel(study, seen, classes) for study, seen in zip(studies, views))
    for study, panel in zip(studies, (a, b)):
        if panel.viewers == 0:
            raise EmptyStudy(f"study {study.id} has no valid viewer yet")
    seconds = min(a.seconds, b.seconds)
    warnings = []
    if a.seconds != b.seconds:
        warnings.append(
            f"the stimuli differ in length ({a.seconds} s and {b.seconds} s): every figure covers the first "
            f"{seconds} s of both"
        )
    if min(a.viewers, b.viewers) < SMALL_GROUP:
        warnings.append(
            f"fewer than {SMALL_GROUP} viewers on a side ({a.viewers} and {b.viewers}): the tests are exact, "
            "and only large differences can show"
        )
    return StudyComparison(
        a=studies[0].id,
        b=studies[1].id,
        viewers=(a.viewers, b.viewers),
        seconds=seconds,
        threshold=threshold,
        figures_version=FIGURES_VERSION,
        warnings=warnings,
        emotions=compare_panels(a.first(seconds), b.first(seconds), threshold, resamples),
    )


def compare_panels(a: Panel, b: Panel, threshold: float, resamples: int) -> dict[str, EmotionComparison]:
    """Per emotion: ever-reached shares (two-proportion test), per-viewer mean probabilities (bootstrap
    interval, Mann-Whitney test), and the seconds whose share curves differ (max-statistic permutation
    test over viewers, family-wise error 5% over all seconds). Both panels cover the same seconds."""
    rng = np.random.default_rng(SEED)
    seconds = min(a.seconds, b.seconds)
    ever_a, ever_b = a.reached(threshold).any(axis=1).sum(axis=0), b.reached(threshold).any(axis=1).sum(axis=0)
    means_a, means_b = a.viewer_means(), b.viewer_means()
    mean_ci = _mean_difference_intervals(means_a, means_b, resamples, rng)
    together = np.concatenate([a.reached(threshold)[:, :seconds], b.reached(threshold)[:, :seconds]]).astype(float)
    present = np.concatenate([a.present[:, :seconds], b.present[:, :seconds]])
    in_a = np.arange(len(present)) < a.viewers
    results = {}
    for i, c in enumerate(a.classes):
        difference, ever_ci, ever_p = two_proportion(int(ever_a[i]), a.viewers, int(ever_b[i]), b.viewers)
        col_a, col_b = means_a[:, i][~np.isnan(means_a[:, i])], means_b[:, i][~np.isnan(means_b[:, i])]
        curves = together[..., i]
        observed = masked_means(np.stack([in_a, ~in_a]).astype(float), curves, present)
        adjusted = (
            permutation_max_t(curves, present, in_a, resamples, rng)
            if a.viewers and b.viewers
            else np.full(seconds, np.nan)
        )
        differing = [
            DifferingSecond(t=t, difference=number(observed[0, t] - observed[1, t]), p_adjusted=number(adjusted[t]))
            for t in range(seconds)
            if adjusted[t] < ALPHA
        ]
        mean_a, mean_b = (float(col.mean()) if len(col) else np.nan for col in (col_a, col_b))
        small = min(a.viewers, b.viewers) < SMALL_GROUP
        exact_means = small and len(col_a) + len(col_b) <= EXACT_RANK_SUM_MAX
        results[c] = EmotionComparison(
            ever_share=(
                number(ever_a[i] / a.viewers) if a.viewers else None,
                number(ever_b[i] / b.viewers) if b.viewers else None,
            ),
            ever_share_difference=number(difference),
            ever_share_ci=interval(*ever_ci),
            ever_share_p=number(ever_p),
            ever_share_test="fisher" if small else "z",
            mean=(number(mean_a), number(mean_b)),
            mean_difference=number(mean_a - mean_b),
            mean_ci=interval(mean_ci[0][i], mean_ci[1][i]),
            mean_p=number(mann_whitney_p(col_a, col_b)),
            mean_test="exact" if exact_means else "normal",
            differing_seconds=differing,
        )
    return results


def _mean_difference_intervals(
    means_a: np.ndarray, means_b: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the 95% interval of mean(a) - mean(b), each study's viewers resampled on their own."""

    def resampled(means: np.ndarray) -> np.ndarray:
        weights = resample_counts(len(means), resamples, rng)
        has_face = ~np.isnan(means[:, :1])  # [viewers, 1]: a viewer without any face has no mean
        return masked_means(weights, means[:, None, :], has_face)[:, 0, :]

    return percentile_interval(resampled(means_a) - resampled(means_b))
