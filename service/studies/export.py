"""A report and its viewers as CSV, for spreadsheets."""

from __future__ import annotations

import csv
import io
import unicodedata

import numpy as np

from service.studies.models import StudyReport
from service.studies.store import SessionView

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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
        writer.writerow(row)
    return out.getvalue()


def viewers_csv(views: list[SessionView], classes: tuple[str, ...], threshold: float) -> str:
    """One row per session: state, presence, attention, each emotion's mean and whether it reached the threshold."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["session_id", "viewer", "status", "reason", "presence", "attention"]
        + [f"{c}_mean" for c in classes]
        + [f"{c}_reached" for c in classes]
    )
    for view in views:
        row = [view.id, cell(view.viewer), view.status, cell(view.reason)]
        if view.trace is None:
            writer.writerow(row + [""] * (2 + 2 * len(classes)))
            continue
        found = [p for p in view.trace.probabilities if p is not None]
        means = np.mean(found, axis=0) if found else np.full(len(classes), np.nan)
        peaks = np.max(found, axis=0) if found else np.full(len(classes), -1.0)
        attention = sum(view.trace.attentive) / max(len(view.trace.attentive), 1)
        row += [round(view.trace.presence(), 4), round(attention, 4)]
        row += ["" if np.isnan(m) else round(float(m), 4) for m in means]
        row += [int(p >= threshold) for p in peaks]
        writer.writerow(row)
    return out.getvalue()
