"""Segments, norms and the chart on planted truths, without a service: who smiled is known, so the
figures are too."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.config import Settings
from service.inference.annotate import EMOTION_COLOURS
from service.studies.chart import EMOTIONS, SEEN, WIDTH, report_png
from service.studies.norms import percentile, study_norms
from service.studies.report import study_report
from service.studies.segments import REST, SegmentTooSmall, segment_report, study_segments
from tests.helpers.sessions import CALM, CLASSES, SMILE, session, study

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

SETTINGS = Settings().studies  # the privacy floor: 10 valid viewers
SECONDS = 8


def panel(region: str, count: int, smiling_at: set[int], first: int) -> list:
    return [
        session(first + i, [SMILE if t in smiling_at else CALM for t in range(SECONDS)], {"region": region})
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def views() -> list:
    """North smiles at 4 s (20 viewers), south never (20), east smiles at 2 s but has only 6 viewers."""
    return panel("north", 20, {4}, 0) + panel("south", 20, set(), 100) + panel("east", 6, {2}, 200)


def test_a_segment_report_covers_only_its_viewers_and_small_segments_are_refused(views: list) -> None:
    north = segment_report(study("s", SECONDS), views, "region", "north", CLASSES, 0.5, SETTINGS)
    assert north.sessions.valid == 20 and north.segment == "region:north"
    assert north.summary["happy"].peak.t == 4 and north.summary["happy"].ever_share == 1.0
    with pytest.raises(SegmentTooSmall, match="fewer than 10 valid viewers"):
        segment_report(study("s", SECONDS), views, "region", "east", CLASSES, 0.5, SETTINGS)
    with pytest.raises(SegmentTooSmall):
        segment_report(study("s", SECONDS), views, "market", "uk", CLASSES, 0.5, SETTINGS)


def test_segments_give_a_panel_per_value_and_compare_the_ones_with_figures(views: list) -> None:
    split = study_segments(study("s", SECONDS), views, "region", CLASSES, 0.5, SETTINGS)
    assert [(p.value, p.viewers, p.report is not None) for p in split.segments] == [
        ("north", 20, True),
        ("south", 20, True),
        ("east", 6, False),  # under the floor: counted, never shown
    ]
    (comparison,) = split.comparisons
    assert (comparison.a, comparison.b) == ("north", "south")
    happy = comparison.comparison.emotions["happy"]
    assert happy.ever_share == (1.0, 0.0) and happy.ever_share_p < 0.001
    assert [s.t for s in happy.differing_seconds] == [4]


def test_three_segments_with_figures_are_each_compared_with_the_rest() -> None:
    views = panel("a", 12, {1}, 0) + panel("b", 12, set(), 100) + panel("c", 12, set(), 200)
    split = study_segments(study("s", SECONDS), views, "region", CLASSES, 0.5, SETTINGS)
    assert [(c.a, c.b) for c in split.comparisons] == [("a", REST), ("b", REST), ("c", REST)]
    assert split.comparisons[0].comparison.viewers == (12, 24)
    assert [s.t for s in split.comparisons[0].comparison.emotions["happy"].differing_seconds] == [1]


def test_norms_place_a_study_among_its_category_from_five_studies_on() -> None:
    """Six studies in which 2, 4, ..., 12 of 20 viewers smile at 3 s: the sixth tops every headline figure."""
    reports = []
    for index, smiling in enumerate(range(2, 14, 2)):
        views = [session(i, [SMILE if t == 3 and i < smiling else CALM for t in range(SECONDS)]) for i in range(20)]
        reports.append(study_report(study(f"s{index}", SECONDS), views, CLASSES, 0.5, SETTINGS))
    top = study_norms(reports[-1], "snacks", reports[:-1], min_studies=5)
    assert top.studies == 5 and top.note is None
    assert top.metrics["happy_ever_share"].value == 0.6 and top.metrics["happy_ever_share"].percentile == 100.0
    assert top.metrics["happy_peak_share"].value == 0.6 and top.metrics["happy_peak_share"].percentile == 100.0
    assert top.metrics["attention"].value == 1.0 and top.metrics["attention"].percentile == 50.0  # all tied
    middle = study_norms(reports[2], "snacks", reports[:2] + reports[3:], min_studies=5)
    assert middle.metrics["happy_ever_share"].percentile == 40.0  # above 2 of the 5 others
    early = study_norms(reports[-1], "snacks", reports[:3], min_studies=5)
    assert early.metrics["happy_ever_share"].percentile is None and "need 5" in early.note
    assert percentile(0.5, [0.1, 0.5, None, 0.9]) == 50.0


def test_the_chart_has_panels_for_shares_attention_and_viewers_and_no_line_for_unseen_emotions() -> None:
    views = [session(i, [SMILE if t == 4 else CALM for t in range(SECONDS)]) for i in range(20)]
    views += [session(99, [None] * 3 + [CALM] * (SECONDS - 3))]  # one viewer seen from 3 s on
    report = study_report(study("s", SECONDS), views, CLASSES, 0.5, SETTINGS)
    picture = cv2.imdecode(np.frombuffer(report_png(report), np.uint8), cv2.IMREAD_COLOR)
    legend = picture[:, WIDTH - 190 :]

    def has(region: np.ndarray, colour: tuple[int, int, int]) -> bool:
        return bool(np.all(region == colour, axis=2).any())

    assert has(legend, EMOTION_COLOURS["happy"]) and has(legend, EMOTION_COLOURS["neutral"])
    assert not has(legend, EMOTION_COLOURS["disgust"])  # nobody showed it: no legend line
    bars = picture[SEEN.top : SEEN.top + SEEN.height, 90 : WIDTH - 190]
    heights = (np.all(bars == (150, 150, 150), axis=2)).sum(axis=0)
    assert heights.max() == SEEN.height and 0 < heights[heights > 0].min() < SEEN.height  # 20 seen, then 21
    title_column = picture[EMOTIONS.top : EMOTIONS.top + EMOTIONS.height, 8:30]
    assert (title_column < 128).any()  # the y-axis title, written upwards
