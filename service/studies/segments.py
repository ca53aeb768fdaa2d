"""A study's figures per segment: the viewers who gave one answer to one of the respondent's own
questions (age band, market...), never anything inferred from a face. A segment with fewer valid
viewers than the privacy floor gets no figures, so no answer can single a respondent out."""

from __future__ import annotations

from service.config import StudySettings
from service.studies.compare import compare_studies
from service.studies.models import SegmentComparison, SegmentPanel, StudyReport, StudySegments
from service.studies.report import study_report
from service.studies.schema import ANALYSED, Study
from service.studies.store import SessionView

REST = "rest"
MOST_VALUES = 20  # segments listed, largest first
MOST_COMPARISONS = 8


class SegmentTooSmall(Exception):
    """A segment under the privacy floor: its figures could single out the respondents in it."""


def valid_viewers(views: list[SessionView]) -> int:
    return sum(view.status == ANALYSED for view in views)


def split_views(views: list[SessionView], key: str) -> dict[str, list[SessionView]]:
    """The sessions of each value of `key`, largest segment first; sessions without the key are in none."""
    groups: dict[str, list[SessionView]] = {}
    for view in views:
        if key in view.attributes:
            groups.setdefault(view.attributes[key], []).append(view)
    return dict(sorted(groups.items(), key=lambda item: (-valid_viewers(item[1]), item[0])))


def segment_report(
    study: Study,
    views: list[SessionView],
    key: str,
    value: str,
    classes: tuple[str, ...],
    threshold: float,
    settings: StudySettings,
) -> StudyReport:
    """The report over one segment's sessions; SegmentTooSmall under the floor."""
    chosen = split_views(views, key).get(value, [])
    if valid_viewers(chosen) < settings.segment_min_viewers:
        raise SegmentTooSmall(
            f"segment {key}:{value} has fewer than {settings.segment_min_viewers} valid viewers: "
            "its figures are withheld to protect the respondents"
        )
    return study_report(study, chosen, classes, threshold, settings, segment=f"{key}:{value}")


def study_segments(
    study: Study,
    views: list[SessionView],
    key: str,
    classes: tuple[str, ...],
    threshold: float,
    settings: StudySettings,
) -> StudySegments:
    """One panel per value of `key`, and the values with figures compared with the same tests as two studies."""
    groups = dict(list(split_views(views, key).items())[:MOST_VALUES])
    floor = settings.segment_min_viewers
    panels, shown = [], {}
    for value, group in groups.items():
        report = None
        if valid_viewers(group) >= floor:
            report = study_report(study, group, classes, threshold, settings, segment=f"{key}:{value}")
            shown[value] = group
        panels.append(SegmentPanel(value=value, viewers=valid_viewers(group), report=report))
    pairs: list[tuple[str, list[SessionView], str, list[SessionView]]] = []
    values = list(shown)
    if len(values) == 2:
        pairs.append((values[0], shown[values[0]], values[1], shown[values[1]]))
    elif len(values) > 2:
        for value in values[:MOST_COMPARISONS]:
            rest = [view for other, group in shown.items() if other != value for view in group]
            pairs.append((value, shown[value], REST, rest))
    comparisons = [
        SegmentComparison(a=a, b=b, comparison=compare_studies((study, study), (va, vb), classes, threshold, settings))
        for a, va, b, vb in pairs
    ]
    return StudySegments(
        study_id=study.id, by=key, threshold=threshold, min_viewers=floor, segments=panels, comparisons=comparisons
    )
