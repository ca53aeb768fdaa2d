"""Two studies compared, viewers as the unit, on the seconds both cover (the tests are stated in
docs/studies.md)."""

from __future__ import annotations

import numpy as np

from service.config import StudySettings
from service.studies.action_figures import per_viewer, smiling
from service.studies.models import (
    ActionComparison,
    DifferingSecond,
    EmotionComparison,
    StudyComparison,
    ViewerMeanComparison,
)
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
    settings: StudySettings,
) -> StudyComparison:
    """The comparison of two studies' valid viewers, with what a reader should know before trusting it."""
    a, b = (valid_panel(study, seen, classes) for study, seen in zip(studies, views))
    for study, panel in zip(studies, (a, b)):
        if panel.viewers == 0:
            raise EmptyStudy(f"study {study.id} has no valid viewer yet")
    seconds, resamples = min(a.seconds, b.seconds), settings.bootstrap_resamples
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
        actions=compare_actions(a.first(seconds), b.first(seconds), settings.smile_threshold, resamples),
    )


def compare_panels(a: Panel, b: Panel, threshold: float, resamples: int) -> dict[str, EmotionComparison]:
    """Per emotion: ever-reached shares (two-proportion test), per-viewer mean probabilities (bootstrap
    interval, Mann-Whitney test), and the seconds whose share curves differ (max-statistic permutation
    test over viewers, family-wise error 5% over all seconds). Both panels cover the same seconds."""
    rng = np.random.default_rng(SEED)
    ever_a, ever_b = a.reached(threshold).any(axis=1).sum(axis=0), b.reached(threshold).any(axis=1).sum(axis=0)
    means_a, means_b = a.viewer_means(), b.viewer_means()
    mean_ci = _mean_difference_intervals(means_a, means_b, resamples, rng)
    together = np.concatenate([a.reached(threshold), b.reached(threshold)]).astype(float)
    present = np.concatenate([a.present, b.present])
    small = min(a.viewers, b.viewers) < SMALL_GROUP
    results = {}
    for i, c in enumerate(a.classes):
        difference, ever_ci, ever_p = two_proportion(int(ever_a[i]), a.viewers, int(ever_b[i]), b.viewers)
        means = _viewer_mean_comparison(means_a[:, i], means_b[:, i], (mean_ci[0][i], mean_ci[1][i]), small)
        results[c] = EmotionComparison(
            ever_share=(
                number(ever_a[i] / a.viewers) if a.viewers else None,
                number(ever_b[i] / b.viewers) if b.viewers else None,
            ),
            ever_share_difference=number(difference),
            ever_share_ci=interval(*ever_ci),
            ever_share_p=number(ever_p),
            ever_share_test="fisher" if small else "z",
            mean=means.mean,
            mean_difference=means.difference,
            mean_ci=means.ci,
            mean_p=means.p,
            mean_test=means.test,
            differing_seconds=_differing_seconds(together[..., i], present, a.viewers, resamples, rng),
        )
    return results


def compare_actions(a: Panel, b: Panel, smile_threshold: float, resamples: int) -> ActionComparison | None:
    """The face's actions, over the viewers whose faces were described on each side (None unless both have
    some): who ever smiled, the seconds whose smile shares differ, and per-viewer mean expressiveness and
    blink rate, with the tests the emotions get."""
    a, b = (panel.only(panel.described.any(axis=1)) for panel in (a, b))
    if not (a.viewers and b.viewers):
        return None
    rng = np.random.default_rng(SEED)
    (smiling_a, per_a), (smiling_b, per_b) = ((smiling(p, smile_threshold), per_viewer(p)) for p in (a, b))
    ever_a, ever_b = int(smiling_a.any(axis=1).sum()), int(smiling_b.any(axis=1).sum())
    difference, ever_ci, ever_p = two_proportion(ever_a, a.viewers, ever_b, b.viewers)
    together = np.concatenate([smiling_a, smiling_b]).astype(float)
    present = np.concatenate([a.described, b.described])
    lo, hi = _mean_difference_intervals(per_a, per_b, resamples, rng)
    small = min(a.viewers, b.viewers) < SMALL_GROUP
    expressiveness, blink_rate = (
        _viewer_mean_comparison(per_a[:, i], per_b[:, i], (lo[i], hi[i]), small) for i in range(2)
    )
    return ActionComparison(
        viewers=(a.viewers, b.viewers),
        smile_ever_share=(number(ever_a / a.viewers), number(ever_b / b.viewers)),
        smile_ever_share_difference=number(difference),
        smile_ever_share_ci=interval(*ever_ci),
        smile_ever_share_p=number(ever_p),
        smile_ever_share_test="fisher" if small else "z",
        smile_differing_seconds=_differing_seconds(together, present, a.viewers, resamples, rng),
        expressiveness=expressiveness,
        blink_rate=blink_rate,
    )


def _viewer_mean_comparison(a: np.ndarray, b: np.ndarray, ci: tuple[float, float], small: bool) -> ViewerMeanComparison:
    """Per-viewer means of a and b (NaN: a viewer without any), their difference and its test."""
    col_a, col_b = a[~np.isnan(a)], b[~np.isnan(b)]
    mean_a, mean_b = (float(col.mean()) if len(col) else np.nan for col in (col_a, col_b))
    exact = small and len(col_a) + len(col_b) <= EXACT_RANK_SUM_MAX
    return ViewerMeanComparison(
        mean=(number(mean_a), number(mean_b)),
        difference=number(mean_a - mean_b),
        ci=interval(*ci),
        p=number(mann_whitney_p(col_a, col_b)),
        test="exact" if exact else "normal",
    )


def _differing_seconds(
    curves: np.ndarray, present: np.ndarray, viewers_a: int, resamples: int, rng: np.random.Generator
) -> list[DifferingSecond]:
    """The seconds at which the 0/1 curves [viewers of a then b, seconds] differ between the two groups."""
    in_a = np.arange(len(present)) < viewers_a
    if not (in_a.any() and (~in_a).any()):
        return []
    observed = masked_means(np.stack([in_a, ~in_a]).astype(float), curves, present)
    adjusted = permutation_max_t(curves, present, in_a, resamples, rng)
    return [
        DifferingSecond(t=t, difference=number(observed[0, t] - observed[1, t]), p_adjusted=number(adjusted[t]))
        for t in range(curves.shape[1])
        if adjusted[t] < ALPHA
    ]


def _mean_difference_intervals(
    means_a: np.ndarray, means_b: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the 95% interval of mean(a) - mean(b), each study's viewers resampled on their own."""

    def resampled(means: np.ndarray) -> np.ndarray:
        weights = resample_counts(len(means), resamples, rng)
        has_face = ~np.isnan(means[:, :1])  # [viewers, 1]: a viewer without any face has no mean
        return masked_means(weights, means[:, None, :], has_face)[:, 0, :]

    return percentile_interval(resampled(means_a) - resampled(means_b))
