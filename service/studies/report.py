"""A study's report: per second, per emotion and overall, with intervals (definitions in docs/studies.md)."""

from __future__ import annotations

import math

import numpy as np

from service.schemas import ModelRef
from service.studies.models import (
    AttentionDrop,
    BestMoment,
    EmotionSecond,
    EmotionSummary,
    Exclusion,
    Moment,
    PeakMoment,
    ReportSecond,
    SessionCounts,
    StudyReport,
)
from service.studies.panel import POSITIVE, Panel
from service.studies.schema import ANALYSED, EXCLUDED, Study
from service.studies.statistics import (
    SEED,
    masked_means,
    percentile_interval,
    resample_counts,
    second_chunks,
    wilson,
)
from service.studies.store import SessionView
from service.studies.trace import stimulus_seconds

FIGURES_VERSION = "2"


def number(value: float) -> float | None:
    """A figure as JSON: rounded, None where it is undefined (no viewer with a face)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def interval(lo: float, hi: float) -> tuple[float | None, float | None]:
    return number(lo), number(hi)


class Figures:
    """Every figure of one panel at one threshold; the bootstrap is drawn once and shared.

    The bootstrap works only on the seconds at which some viewer's face was seen, a chunk of seconds
    at a time: its cost follows the data, and its memory stays bounded for any stimulus length.
    """

    def __init__(self, panel: Panel, threshold: float, resamples: int) -> None:
        self.panel, self.threshold = panel, threshold
        self.weights = resample_counts(panel.viewers, resamples, np.random.default_rng(SEED))
        self.reached = panel.reached(threshold)
        self.n = panel.present.sum(axis=0)
        self.seen = np.flatnonzero(self.n)  # the seconds with at least one face
        self.k = self.reached.sum(axis=0)  # [seconds, classes]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.share = self.k / self.n[:, None]
        self.share_ci = wilson(self.k, self.n[:, None])
        one = np.ones((1, panel.viewers))
        self.mean = masked_means(one, panel.probabilities, panel.present)[0]
        self.mean_ci = self._mean_intervals()
        self.valence = masked_means(one, panel.valence()[..., None], panel.present)[0, :, 0]
        self.attention = (
            panel.attentive.sum(axis=0) / panel.viewers if panel.viewers else np.full(panel.seconds, np.nan)
        )

    def seconds(self) -> list[ReportSecond]:
        classes = self.panel.classes
        rows = []
        for t in range(self.panel.seconds):
            emotions = {
                c: EmotionSecond(
                    mean=number(self.mean[t, i]),
                    mean_ci=interval(self.mean_ci[0][t, i], self.mean_ci[1][t, i]),
                    share=number(self.share[t, i]),
                    share_ci=interval(self.share_ci[0][t, i], self.share_ci[1][t, i]),
                )
                for i, c in enumerate(classes)
            }
            rows.append(
                ReportSecond(
                    t=t,
                    n=int(self.n[t]),
                    attention=number(self.attention[t]),
                    emotions=emotions,
                    valence=number(self.valence[t]),
                )
            )
        return rows

    def summary(self) -> dict[str, EmotionSummary]:
        viewers = self.panel.viewers
        ever = self.reached.any(axis=1).sum(axis=0)  # [classes]
        ever_ci = wilson(ever, np.full(len(ever), viewers))
        peak_ci = self._peak_time_intervals()
        summaries = {}
        for i, c in enumerate(self.panel.classes):
            curve = self.share[:, i]
            defined = not np.all(np.isnan(curve))
            trough = int(np.nanargmin(curve)) if defined else None
            peak = int(np.nanargmax(curve)) if defined and np.nanmax(curve) > 0 else None  # nobody reached it: no peak
            summaries[c] = EmotionSummary(
                ever_share=number(ever[i] / viewers) if viewers else None,
                ever_share_ci=interval(ever_ci[0][i], ever_ci[1][i]),
                avg_share=number(np.nanmean(curve)) if defined else None,
                peak=None if peak is None else PeakMoment(t=peak, share=number(curve[peak]), t_ci=peak_ci[i]),
                trough=None if trough is None else Moment(t=trough, share=number(curve[trough])),
                ending=number(curve[-1]),
            )
        return summaries

    def _chunks(self) -> list[np.ndarray]:
        """The seen seconds, in chunks a bootstrap array of which stays within its memory budget."""
        chunks = second_chunks(len(self.seen), len(self.weights), len(self.panel.classes))
        return [self.seen[chunk] for chunk in chunks]

    def _mean_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """[seconds, classes] bounds of the mean's 95% bootstrap interval; NaN at seconds nobody was seen."""
        panel = self.panel
        lo, hi = np.full((2, panel.seconds, len(panel.classes)), np.nan)
        for seconds in self._chunks():
            means = masked_means(self.weights, panel.probabilities[:, seconds], panel.present[:, seconds])
            lo[seconds], hi[seconds] = percentile_interval(means)
        return lo, hi

    def _peak_time_intervals(self) -> list[tuple[float | None, float | None]]:
        """For each class, the 95% bootstrap interval of the second at which its share peaks."""
        classes = len(self.panel.classes)
        best = np.full((len(self.weights), classes), -np.inf)
        peaks = np.full((len(self.weights), classes), np.nan)
        jitter_rng = np.random.default_rng(SEED)
        for seconds in self._chunks():
            present = self.panel.present[:, seconds]
            shares = masked_means(self.weights, self.reached[:, seconds].astype(float), present)  # [B, chunk, C]
            shares = np.where(np.isnan(shares), -np.inf, shares)
            # Seconds tied at the top are equally the peak: a random one is taken, so a plateau widens the interval.
            shares += jitter_rng.uniform(0, 1e-9, shares.shape)
            top = shares.argmax(axis=1)  # [B, C]
            value = np.take_along_axis(shares, top[:, None, :], axis=1)[:, 0]
            better = value > best
            best = np.where(better, value, best)
            peaks = np.where(better, seconds[top].astype(float), peaks)
        lo, hi = percentile_interval(peaks)
        return [interval(lo[i], hi[i]) for i in range(classes)]

    def best_moment(self, summary: dict[str, EmotionSummary]) -> BestMoment | None:
        peaks = [(s.peak, c) for c, s in summary.items() if c in POSITIVE and s.peak is not None]
        if not peaks:
            return None
        peak, emotion = max(peaks, key=lambda pair: pair[0].share)
        return BestMoment(emotion=emotion, **peak.model_dump())

    def attention_drop(self) -> AttentionDrop | None:
        falls = self.attention[:-1] - self.attention[1:]
        if len(falls) == 0 or not np.nanmax(falls, initial=0) > 0:
            return None
        t = int(np.nanargmax(falls)) + 1
        return AttentionDrop(t=t, before=number(self.attention[t - 1]), after=number(self.attention[t]))


def valid_panel(study: Study, views: list[SessionView], classes: tuple[str, ...]) -> Panel:
    """The valid viewers' traces (analysed, not excluded) over the stimulus's seconds."""
    valid = [v.trace for v in views if v.status == ANALYSED]
    return Panel.of(valid, stimulus_seconds(study.stimulus_duration_s), classes)


def study_report(
    study: Study, views: list[SessionView], classes: tuple[str, ...], threshold: float, resamples: int
) -> StudyReport:
    """The report of a study's sessions as they stand."""
    finished = [v for v in views if v.status in (ANALYSED, EXCLUDED)]
    panel = valid_panel(study, views, classes)
    figures = Figures(panel, threshold, resamples)
    summary = figures.summary()
    models = {}
    for view in finished:
        for role, ref in (view.models or {}).items():
            models.setdefault(role, ModelRef(**ref))
    return StudyReport(
        study_id=study.id,
        name=study.name,
        stimulus_duration_s=study.stimulus_duration_s,
        events=study.events,
        threshold=threshold,
        figures_version=FIGURES_VERSION,
        models=models,
        sessions=SessionCounts(
            uploaded=len(views),
            analysed=len(finished),
            valid=panel.viewers,
            excluded=[Exclusion(session_id=v.id, reason=v.reason or "") for v in views if v.status == EXCLUDED],
        ),
        seconds=figures.seconds(),
        summary=summary,
        best_moment=figures.best_moment(summary),
        attention_drop=figures.attention_drop(),
    )
