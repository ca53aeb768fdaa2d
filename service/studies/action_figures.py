"""The report's figures of what the viewers' faces did (docs/studies.md#actions), over the seconds at
which a viewer's face was described (recorded sessions; sessions analysed in the browser have none):
per second the share smiling (Wilson interval), the mean expressiveness and the mean blink rate
(bootstrap intervals over viewers); over the stimulus, the share who ever smiled, the smile's peak and
each viewer's mean expressiveness and blink rate. Viewers are the unit, as everywhere in a study."""

from __future__ import annotations

import numpy as np

from service.studies.models import ActionSecond, ActionSummary, Moment
from service.studies.panel import Panel
from service.studies.statistics import bootstrap_mean_intervals, masked_means, percentile_interval, wilson

BLINK_WINDOW_S = 5  # a second's blink rate counts the blinks of the 5 s centred on it


def rounded(value: float) -> float:
    return round(float(value), 4)


def bounds(lo: float, hi: float) -> tuple[float | None, float | None]:
    """An interval as JSON: None for a bound no resample defined."""
    return tuple(rounded(v) if np.isfinite(v) else None for v in (lo, hi))


def windowed_blink_rate(blinks: np.ndarray, described: np.ndarray) -> np.ndarray:
    """[viewers, seconds]: blinks a minute over the described seconds of the window centred on each second;
    NaN where the second itself was not described."""
    kernel, half = np.ones(BLINK_WINDOW_S), BLINK_WINDOW_S // 2

    def window_sums(values: np.ndarray) -> np.ndarray:
        seconds = values.shape[1]
        return np.array([np.convolve(row, kernel)[half : half + seconds] for row in values]).reshape(values.shape)

    counts, seen = window_sums(np.where(described, blinks, 0.0)), window_sums(described.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(described, 60.0 * counts / seen, np.nan)


def viewer_means(values: np.ndarray, described: np.ndarray) -> np.ndarray:
    """[viewers]: each viewer's mean over their described seconds (NaN for a viewer never described)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(described, values, 0.0).sum(axis=1) / described.sum(axis=1)


def smiling(panel: Panel, smile_threshold: float) -> np.ndarray:
    """[viewers, seconds]: the second's median smile reached the threshold (False where not described)."""
    return np.nan_to_num(panel.action("smile"), nan=-1.0) >= smile_threshold


def per_viewer(panel: Panel) -> np.ndarray:
    """[viewers, 2]: each viewer's mean expressiveness and blinks a minute over their described seconds."""
    described = panel.described
    blinks = viewer_means(np.nan_to_num(panel.action("blinks")), described)
    return np.stack([viewer_means(panel.action("expressiveness"), described), 60.0 * blinks], axis=1)


class ActionFigures:
    """Every action figure of one panel; `weights` are the report's bootstrap resamples of its viewers."""

    def __init__(self, panel: Panel, smile_threshold: float, weights: np.ndarray, min_viewers: int) -> None:
        self.described = panel.described
        self.n = self.described.sum(axis=0)
        self.seen = np.flatnonzero(self.n)
        self.min_viewers = min_viewers
        self.smiling = smiling(panel, smile_threshold)
        self.k = self.smiling.sum(axis=0)
        self.share_ci = wilson(self.k, self.n)
        blinks_per_min = windowed_blink_rate(np.nan_to_num(panel.action("blinks")), self.described)
        curves = np.stack([panel.action("expressiveness"), blinks_per_min], axis=2)  # [viewers, seconds, 2]
        self.means = masked_means(np.ones((1, panel.viewers)), curves, self.described)[0]
        self.means_ci = bootstrap_mean_intervals(weights, curves, self.described, self.seen)
        self.per_viewer = per_viewer(panel)
        self.weights = weights

    def second(self, t: int) -> ActionSecond | None:
        if self.n[t] == 0:
            return None
        return ActionSecond(
            n=int(self.n[t]),
            smile_share=rounded(self.k[t] / self.n[t]),
            smile_share_ci=bounds(self.share_ci[0][t], self.share_ci[1][t]),
            expressiveness=rounded(self.means[t, 0]),
            expressiveness_ci=bounds(self.means_ci[0][t, 0], self.means_ci[1][t, 0]),
            blink_rate=rounded(self.means[t, 1]),
            blink_rate_ci=bounds(self.means_ci[0][t, 1], self.means_ci[1][t, 1]),
        )

    def summary(self) -> ActionSummary | None:
        viewers = self.described.any(axis=1)
        if not viewers.any():
            return None
        count = int(viewers.sum())
        ever = int(self.smiling.any(axis=1).sum())
        ever_lo, ever_hi = wilson(np.array(ever), np.array(count))
        has = viewers[:, None]
        means = masked_means(np.ones((1, len(viewers))), self.per_viewer[:, None, :], has)[0, 0]
        lo, hi = percentile_interval(masked_means(self.weights, self.per_viewer[:, None, :], has)[:, 0])
        return ActionSummary(
            viewers=count,
            smile_ever_share=rounded(ever / count),
            smile_ever_share_ci=bounds(ever_lo, ever_hi),
            smile_avg_share=rounded(np.mean(self.k[self.seen] / self.n[self.seen])),
            smile_peak=self._smile_peak(),
            expressiveness=rounded(means[0]),
            expressiveness_ci=bounds(lo[0], hi[0]),
            blink_rate=rounded(means[1]),
            blink_rate_ci=bounds(lo[1], hi[1]),
        )

    def _smile_peak(self) -> Moment | None:
        eligible = np.flatnonzero(self.n >= max(1, self.min_viewers))
        if len(eligible) == 0 or self.k[eligible].max() == 0:
            return None
        t = int(eligible[int(np.argmax(self.share_ci[0][eligible]))])
        return Moment(t=t, share=rounded(self.k[t] / self.n[t]), n=int(self.n[t]))
