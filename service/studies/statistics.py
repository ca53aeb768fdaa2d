"""The statistics of a study, with viewers as the unit: Wilson intervals for shares, bootstrap over
viewers for means and for when a peak happens, Mann-Whitney and two-proportion tests between two
studies, and a max-statistic permutation test for the seconds at which two curves differ.

numpy only, vectorised over seconds and classes: 150 viewers x 60 s x 7 classes with 1,000
resamples is a few matrix products.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

Z95 = 1.959963984540054
SEED = 20_240_601  # fixed, so a report is the same every time it is computed


def wilson(successes: np.ndarray, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of successes/trials, element-wise; NaN where there are no trials."""
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def resample_counts(viewers: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[resamples, viewers]: how often each viewer is drawn in each bootstrap resample of the viewers."""
    if viewers == 0:
        return np.zeros((resamples, 0))
    return rng.multinomial(viewers, np.full(viewers, 1 / viewers), size=resamples).astype(float)


def masked_means(weights: np.ndarray, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Weighted means over viewers of values [viewers, seconds, ...] where present [viewers, seconds],
    for each row of weights [rows, viewers]: [rows, seconds, ...], NaN where nobody is present."""
    viewers, seconds = present.shape
    filled = np.where(present.reshape(viewers, seconds, *([1] * (values.ndim - 2))), values, 0.0)
    sums = weights @ filled.reshape(viewers, int(np.prod(values.shape[1:])))  # -1 fails with no viewers
    counts = weights @ present.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums.reshape(len(weights), seconds, -1) / counts[:, :, None]
    return means.reshape(len(weights), *values.shape[1:])


def second_chunks(seconds: int, rows: int, classes: int, budget: int = 2_000_000) -> list[slice]:
    """Slices of the seconds such that one [rows, chunk, classes] array holds at most `budget` numbers:
    a bootstrap's memory stays bounded (16 MB an array) however long the stimulus is."""
    step = max(1, budget // max(1, rows * classes))
    return [slice(start, min(start + step, seconds)) for start in range(0, seconds, step)]


def percentile_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The central 95% of bootstrap samples along the first axis, ignoring NaN."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: seconds nobody was seen
        return np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U test, normal approximation with tie correction (fine from about 10 viewers a
    side). NaN when either side is empty or every value is the same."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return math.nan
    values = np.concatenate([a, b])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = np.bincount(inverse, weights=ranks)[inverse] / counts[inverse]  # ties share their mean rank
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - (counts**3 - counts).sum() / (n * (n - 1)))
    if variance <= 0:
        return math.nan
    z = (u - n1 * n2 / 2) / math.sqrt(variance)
    return normal_two_sided_p(z)


def two_proportion(k1: int, n1: int, k2: int, n2: int) -> tuple[float, tuple[float, float], float]:
    """Difference p1 - p2 with Newcombe's hybrid Wilson 95% interval, and the pooled two-proportion z-test's
    two-sided p-value."""
    if n1 == 0 or n2 == 0:
        return math.nan, (math.nan, math.nan), math.nan
    p1, p2 = k1 / n1, k2 / n2
    (l1, l2), (u1, u2) = wilson(np.array([k1, k2]), np.array([n1, n2]))
    d = p1 - p2
    interval = (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se == 0 else normal_two_sided_p(d / se)
    return d, interval, p_value


def permutation_max_t(
    values: np.ndarray, present: np.ndarray, in_a: np.ndarray, permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Per second, the p-value that group a's and b's mean curves differ there, adjusted for testing every
    second (Westfall-Young max-statistic over viewer-label permutations: family-wise error at most alpha).

    values, present: [viewers, seconds]; in_a: [viewers] bool, the group labels."""
    observed = np.abs(_group_difference(values, present, in_a[None, :]))[0]
    labels = np.array([rng.permutation(in_a) for _ in range(permutations)])
    maxima = np.nanmax(np.abs(_group_difference(values, present, labels)), axis=1)
    exceed = (maxima[:, None] >= observed[None, :] - 1e-12).sum(axis=0)
    adjusted = (exceed + 1) / (permutations + 1)
    return np.where(np.isnan(observed), np.nan, adjusted)


def _group_difference(values: np.ndarray, present: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[rows, seconds]: mean of group a minus mean of group b, for each row of labels [rows, viewers]."""
    a = labels.astype(float)
    return masked_means(a, values, present) - masked_means(1 - a, values, present)
