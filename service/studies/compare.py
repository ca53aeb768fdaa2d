"""Two studies compared, viewers as the unit (the tests are stated in docs/studies.md)."""

from __future__ import annotations

import numpy as np

from service.studies.models import DifferingSecond, EmotionComparison
from service.studies.panel import Panel
from service.studies.report import interval, number
from service.studies.statistics import (
    SEED,
    mann_whitney_p,
    masked_means,
    percentile_interval,
    permutation_max_t,
    resample_counts,
    two_proportion,
)

ALPHA = 0.05


def compare_panels(a: Panel, b: Panel, threshold: float, resamples: int) -> dict[str, EmotionComparison]:
    """Per emotion: ever-reached shares (two-proportion test), per-viewer mean probabilities (bootstrap
    interval, Mann-Whitney test), and the seconds whose share curves differ (max-statistic permutation
    test over viewers, family-wise error 5% over all seconds)."""
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
        results[c] = EmotionComparison(
            ever_share=(
                number(ever_a[i] / a.viewers) if a.viewers else None,
                number(ever_b[i] / b.viewers) if b.viewers else None,
            ),
            ever_share_difference=number(difference),
            ever_share_ci=interval(*ever_ci),
            ever_share_p=number(ever_p),
            mean=(number(mean_a), number(mean_b)),
            mean_difference=number(mean_a - mean_b),
            mean_ci=interval(mean_ci[0][i], mean_ci[1][i]),
            mean_p=number(mann_whitney_p(col_a, col_b)),
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
