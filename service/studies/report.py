"""A study's report: per second, per emotion and overall, with intervals (definitions in docs/studies.md)."""

from __future__ import annotations

import math

import numpy as np

from service.config import StudySettings
from service.schemas import ModelRef
from service.studies.action_figures import ActionFigures
from service.studies.models import (
    AttentionDrop,
    BestMoment,
    EmotionSecond,
    EmotionSummary,
    Exclusion,
    Moment,
    PeakMoment,
    QualityGate,
    ReportSecond,
    SessionCounts,
    StudyReport,
)
from service.studies.panel import Panel
from service.studies.schema import ANALYSED, EXCLUDED, Study
from service.studies.statistics import (
    SEED,
    bootstrap_mean_intervals,
    masked_means,
    percentile_interval,
    resample_counts,
    second_chunks,
    wilson,
)
from service.studies.store import SessionView
from service.studies.trace import stimulus_seconds

FIGURES_VERSION = "3"
# The best moment is happy's peak: surprise counts as neither positive nor negative, as in valence.
BEST_MOMENT_EMOTION = "happy"
NEUTRAL = "neutral"


def min_viewers_per_second(viewers: int, floor: int, share: float) -> int:
    """How many viewers' faces a second needs before it can be a peak, a trough or the best moment:
    `floor`, or `share` of the valid viewers, whichever is larger."""
    return max(floor, math.ceil(share * viewers))


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

    def __init__(self, panel: Panel, threshold: float, resamples: int, min_viewers: int = 1) -> None:
        self.panel, self.threshold, self.min_viewers = panel, threshold, min_viewers
        self.weights = resample_counts(panel.viewers, resamples, np.random.default_rng(SEED))
        self.reached = panel.reached(threshold)
        self.n = panel.present.sum(axis=0)
        self.seen = np.flatnonzero(self.n)  # the seconds with at least one face
        # Seconds seen by enough viewers to be a peak, a trough or the best moment: a lone viewer's smile
        # is a 100% share, and no moment to report.
        self.eligible = np.flatnonzero(self.n >= max(1, min_viewers))
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
            summaries[c] = EmotionSummary(
                ever_share=number(ever[i] / viewers) if viewers else None,
                ever_share_ci=interval(ever_ci[0][i], ever_ci[1][i]),
                avg_share=number(np.nanmean(curve)) if defined else None,
                peak=self._peak(i, *peak_ci[i]),
                trough=self._trough(i),
                ending=number(curve[-1]),
            )
        return summaries

    def _peak(self, i: int, t_ci: tuple[float | None, float | None] | None, with_peak: float) -> PeakMoment | None:
        """The eligible second whose share has the highest Wilson lower bound (the share most surely high),
        with the run of seconds tied with it; None if nobody reached the threshold at an eligible second."""
        eligible = self.eligible
        if len(eligible) == 0 or self.k[eligible, i].max() == 0:
            return None
        lower = self.share_ci[0][eligible, i]
        top = lower.max()
        t = int(eligible[int(np.argmax(lower >= top - 1e-9))])
        tied = set(eligible[lower >= top - 1e-9].tolist())
        t_from, t_to = t, t
        while t_to + 1 in tied:
            t_to += 1
        return PeakMoment(
            t=t,
            t_from=t_from,
            t_to=t_to,
            share=number(self.share[t, i]),
            share_lower=number(top),
            n=int(self.n[t]),
            t_ci=t_ci,
            resamples_with_peak=number(with_peak),
        )

    def _trough(self, i: int) -> Moment | None:
        if len(self.eligible) == 0:
            return None
        shares = self.share[self.eligible, i]
        t = int(self.eligible[int(np.argmin(shares))])
        return Moment(t=t, share=number(self.share[t, i]), n=int(self.n[t]))

    def _chunks(self, seconds: np.ndarray) -> list[np.ndarray]:
        """The seconds given, in chunks a bootstrap array of which stays within its memory budget."""
        chunks = second_chunks(len(seconds), len(self.weights), len(self.panel.classes))
        return [seconds[chunk] for chunk in chunks]

    def _mean_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """[seconds, classes] bounds of the mean's 95% bootstrap interval; NaN at seconds nobody was seen."""
        return bootstrap_mean_intervals(self.weights, self.panel.probabilities, self.panel.present, self.seen)

    def _peak_time_intervals(self) -> list[tuple[tuple[float | None, float | None] | None, float]]:
        """For each class: the 95% bootstrap interval of the peak's second, over the resamples that have a
        peak (None unless most do), and the share of resamples that have one. A resample's peak is ranked
        as the report's is (Wilson lower bound over the eligible seconds); one where nobody reached the
        threshold at an eligible second has none, rather than a peak picked among zeros."""
        classes = len(self.panel.classes)
        best = np.full((len(self.weights), classes), -np.inf)
        peaks = np.full((len(self.weights), classes), np.nan)
        jitter_rng = np.random.default_rng(SEED)
        for seconds in self._chunks(self.eligible):
            present = self.panel.present[:, seconds].astype(float)
            k = np.einsum("bv,vtc->btc", self.weights, self.reached[:, seconds].astype(float))
            n = (self.weights @ present)[:, :, None]
            lower = np.where(k > 0, wilson(k, n)[0], -np.inf)  # nobody reached it: not a peak
            lower = np.where(np.isnan(lower), -np.inf, lower)
            # Seconds tied at the top are equally the peak: a random one is taken, so a plateau widens the interval.
            lower += jitter_rng.uniform(0, 1e-9, lower.shape)
            top = lower.argmax(axis=1)  # [B, C]
            value = np.take_along_axis(lower, top[:, None, :], axis=1)[:, 0]
            better = value > best
            best = np.where(better, value, best)
            peaks = np.where(better, seconds[top].astype(float), peaks)
        with_peak = np.mean(~np.isnan(peaks), axis=0) if len(peaks) else np.zeros(classes)
        lo, hi = percentile_interval(peaks)
        return [(interval(lo[i], hi[i]) if with_peak[i] > 0.5 else None, float(with_peak[i])) for i in range(classes)]

    def best_moment(self, summary: dict[str, EmotionSummary]) -> tuple[BestMoment | None, str | None]:
        """Happy's peak, when it is sure enough to name a moment; else None and why. Surprise counts as
        neither positive nor negative, here as in valence."""
        peak = summary[BEST_MOMENT_EMOTION].peak if BEST_MOMENT_EMOTION in summary else None
        if peak is None:
            if len(self.eligible) == 0:
                return None, f"no second has the faces of at least {self.min_viewers} viewers"
            return None, f"no viewer reached the threshold for {BEST_MOMENT_EMOTION} at any second"
        if peak.t_ci is None:
            return None, "most resamples of the viewers have no peak: too few viewers reached the threshold"
        lo, hi = peak.t_ci
        if hi - lo + 1 > 0.5 * self.panel.seconds:
            return None, f"the peak could be anywhere from {lo:g} s to {hi:g} s: more than half the stimulus"
        return BestMoment(emotion=BEST_MOMENT_EMOTION, **peak.model_dump()), None

    def expressiveness(self) -> float | None:
        """Over the seconds with faces, the mean share of viewers showing any emotion but neutral."""
        if len(self.seen) == 0:
            return None
        expressive = [i for i, c in enumerate(self.panel.classes) if c != NEUTRAL]
        showing = self.reached[:, self.seen][..., expressive].any(axis=2).sum(axis=0)
        return number(np.mean(showing / self.n[self.seen]))

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
    study: Study,
    views: list[SessionView],
    classes: tuple[str, ...],
    threshold: float,
    settings: StudySettings,
    segment: str | None = None,
) -> StudyReport:
    """The report of a study's sessions as they stand (`views`: all of them, or one segment's, named)."""
    finished = [v for v in views if v.status in (ANALYSED, EXCLUDED)]
    panel = valid_panel(study, views, classes)
    least = min_viewers_per_second(panel.viewers, settings.min_viewers, settings.min_viewers_share)
    figures = Figures(panel, threshold, settings.bootstrap_resamples, least)
    summary = figures.summary()
    best, why_not = figures.best_moment(summary)
    actions = ActionFigures(panel, settings.smile_threshold, figures.weights, least)
    seconds = [row.model_copy(update={"actions": actions.second(row.t)}) for row in figures.seconds()]
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
        quality=QualityGate(
            min_presence=settings.min_presence,
            max_yaw_deg=settings.max_yaw_deg,
            max_pitch_deg=settings.max_pitch_deg,
            max_gaze_yaw_deg=settings.max_gaze_yaw_deg,
            smile_threshold=settings.smile_threshold,
            min_viewers_per_second=least,
        ),
        seconds=seconds,
        summary=summary,
        best_moment=best,
        best_moment_reason=why_not,
        attention_drop=figures.attention_drop(),
        expressiveness=figures.expressiveness(),
        actions=actions.summary(),
        segment=segment,
    )
