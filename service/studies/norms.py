"""Norms from the key's own library: a study's headline figures placed among the other studies of its
category (the same model), as percentiles, once there are enough of them to mean something."""

from __future__ import annotations

import numpy as np

from service.studies.models import NormMetric, StudyNorms, StudyReport

NORMS_THRESHOLD = 0.5
EMOTION = "happy"


def headline(report: StudyReport) -> dict[str, float | None]:
    """The figures a study is judged by first; None where the report has none."""
    attention = [s.attention for s in report.seconds if s.attention is not None]
    happy = report.summary.get(EMOTION)
    peak = happy.peak if happy else None
    actions = report.actions
    return {
        "attention": round(float(np.mean(attention)), 4) if attention else None,
        "happy_peak_share": peak.share if peak else None,
        "happy_ever_share": happy.ever_share if happy else None,
        "expressiveness": report.expressiveness,
        "happy_ending_share": happy.ending if happy else None,
        "smile_ever_share": actions.smile_ever_share if actions else None,
        "face_expressiveness": actions.expressiveness if actions else None,
        "blink_rate": actions.blink_rate if actions else None,
    }


def percentile(value: float | None, others: list[float | None]) -> float | None:
    """Share of the others below the value, ties counted half, in percent."""
    known = np.array([o for o in others if o is not None], float)
    if value is None or len(known) == 0:
        return None
    return round(100 * (np.sum(known < value) + 0.5 * np.sum(known == value)) / len(known), 1)


def study_norms(report: StudyReport, category: str | None, others: list[StudyReport], min_studies: int) -> StudyNorms:
    """This study's headline figures against `others` (the category's other studies with valid viewers)."""
    own, library = headline(report), [headline(other) for other in others]
    enough = category is not None and len(others) >= min_studies
    metrics = {
        name: NormMetric(value=value, percentile=percentile(value, [h[name] for h in library]) if enough else None)
        for name, value in own.items()
    }
    note = None
    if category is None:
        note = "the study has no category: norms compare studies of one category"
    elif not enough:
        note = f"percentiles need {min_studies} other studies in {category!r} on this model; there are {len(others)}"
    return StudyNorms(
        study_id=report.study_id,
        category=category,
        studies=len(others),
        min_studies=min_studies,
        metrics=metrics,
        note=note,
    )
