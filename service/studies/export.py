"""A report and its viewers as CSV, for spreadsheets."""

from __future__ import annotations

import csv
import io
import unicodedata

import numpy as np

from service.studies.models import ActionSecond, StudyReport
from service.studies.store import SessionView
from service.studies.trace import Trace

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ACTION_FIGURES = {"smile_share": "smile_share_ci", "expressiveness": "expressiveness_ci", "blink_rate": "blink_rate_ci"}


def cell(value: object) -> object:
    """A client's text made inert for spreadsheets, which would run a cell starting with = as a formula,
    also after leading spaces, or as a full-width ＝ (spreadsheets fold those to their ASCII forms)."""
    if isinstance(value, str) and (
        value.startswith(FORMULA_STARTS) or unicodedata.normalize("NFKC", value).lstrip().startswith(FORMULA_STARTS)
    ):
        return "'" + value
    return "" if value is None else value


def report_csv(report: StudyReport) -> str:
    """One row per second of the stimulus."""
    classes = list(report.summary)
    fields = ["t", "n", "attention", "valence"]
    for c in classes:
        fields += [f"{c}_mean", f"{c}_mean_lo", f"{c}_mean_hi", f"{c}_share", f"{c}_share_lo", f"{c}_share_hi"]
    fields += [f"{figure}{end}" for figure in ACTION_FIGURES for end in ("", "_lo", "_hi")] + ["described"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for second in report.seconds:
        row = [second.t, second.n, cell(second.attention), cell(second.valence)]
        for c in classes:
            e = second.emotions[c]
            row += [
                cell(e.mean),
                cell(e.mean_ci[0]),
                cell(e.mean_ci[1]),
                cell(e.share),
                cell(e.share_ci[0]),
                cell(e.share_ci[1]),
            ]
        row += action_cells(second.actions)
        writer.writerow(row)
    return out.getvalue()


def action_cells(actions: ActionSecond | None) -> list[object]:
    """A second's action figures, each with its interval, then the viewers described (blank: nobody)."""
    if actions is None:
        return [""] * (3 * len(ACTION_FIGURES) + 1)
    cells: list[object] = []
    for figure, interval in ACTION_FIGURES.items():
        cells += [getattr(actions, figure), *getattr(actions, interval)]
    return [*cells, actions.n]


def viewer_actions(trace: Trace, smile_threshold: float) -> list[object]:
    """Whether the viewer ever smiled, their mean expressiveness and blinks a minute (blank: not described)."""
    described = [second for second in trace.actions or [] if second is not None]
    if not described:
        return ["", "", ""]
    smiled = int(any(second["smile"] >= smile_threshold for second in described))
    expressiveness = np.mean([second["expressiveness"] for second in described])
    blinks = 60 * sum(second["blinks"] for second in described) / len(described)
    return [smiled, round(float(expressiveness), 4), round(blinks, 2)]


def viewers_csv(views: list[SessionView], classes: tuple[str, ...], threshold: float, smile_threshold: float) -> str:
    """One row per session: state, presence, attention, each emotion's mean and whether it reached the
    threshold, and what the face did."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["session_id", "viewer", "status", "reason", "presence", "attention"]
        + [f"{c}_mean" for c in classes]
        + [f"{c}_reached" for c in classes]
        + ["smiled", "expressiveness", "blinks_per_min"]
    )
    for view in views:
        row = [view.id, cell(view.viewer), view.status, cell(view.reason)]
        if view.trace is None:
            writer.writerow(row + [""] * (5 + 2 * len(classes)))
            continue
        found = [p for p in view.trace.probabilities if p is not None]
        means = np.mean(found, axis=0) if found else np.full(len(classes), np.nan)
        peaks = np.max(found, axis=0) if found else np.full(len(classes), -1.0)
        attention = sum(view.trace.attentive) / max(len(view.trace.attentive), 1)
        row += [round(view.trace.presence(), 4), round(attention, 4)]
        row += ["" if np.isnan(m) else round(float(m), 4) for m in means]
        row += [int(p >= threshold) for p in peaks]
        row += viewer_actions(view.trace, smile_threshold)
        writer.writerow(row)
    return out.getvalue()
