"""What the viewers' faces did, with a planted truth: the smile share and its peak, expressiveness, a blink
rate that falls where viewers stop blinking, the same tests as the emotions in a comparison, and
viewers analysed in their browser (no descriptions) left out of these figures only."""

from __future__ import annotations

import numpy as np
import pytest

from service.config import Settings
from service.studies.action_figures import windowed_blink_rate
from service.studies.compare import compare_studies
from service.studies.report import study_report
from tests.helpers.sessions import CALM, CLASSES, SMILE, session, study

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

SETTINGS = Settings().studies  # smile threshold 0.5
SECONDS = 12
SMILING = range(4, 6)  # the planted smile
STILL = range(5, 10)  # the planted blink inhibition: nobody blinks


def described(smiles: bool, blink_every: int, offset: int) -> list[dict]:
    """A viewer's actions per second: smiling in SMILING if `smiles`, blinking every `blink_every` seconds
    (not in STILL), expressive when smiling."""
    seconds = []
    for t in range(SECONDS):
        smile = 0.8 if smiles and t in SMILING else 0.1
        blinks = int(t not in STILL and (t + offset) % blink_every == 0)
        seconds.append({"smile": smile, "expressiveness": 0.6 if smile > 0.5 else 0.05, "blinks": blinks})
    return seconds


def panel(viewers: int, smiling: int, blink_every: int = 2, on_device: int = 0) -> list:
    views = []
    for i in range(viewers):
        smiles = i < smiling
        probabilities = [SMILE if smiles and t in SMILING else CALM for t in range(SECONDS)]
        actions = None if i >= viewers - on_device else described(smiles, blink_every, i)
        views.append(session(i, probabilities, actions=actions))
    return views


def test_the_report_finds_the_planted_smile_and_the_pause_in_blinking() -> None:
    report = study_report(study("s", SECONDS), panel(20, smiling=12, on_device=4), CLASSES, 0.5, SETTINGS)
    summary = report.actions
    assert summary.viewers == 16  # the four analysed in their browser have no descriptions
    assert summary.smile_ever_share == 12 / 16 and summary.smile_peak.t == SMILING[0]
    low, high = summary.smile_ever_share_ci
    assert low < 12 / 16 < high
    shares = [second.actions.smile_share for second in report.seconds]
    assert all(shares[t] == (12 / 16 if t in SMILING else 0) for t in range(SECONDS))
    assert all(second.actions.n == 16 and second.n == 20 for second in report.seconds)
    expressive = report.seconds[SMILING[0]].actions
    assert expressive.expressiveness_ci[0] <= expressive.expressiveness == pytest.approx(0.6 * 12 / 16 + 0.05 / 4)
    rates = [second.actions.blink_rate for second in report.seconds]
    assert rates[7] == 0 < rates[1]  # the 5 s around 7 are all in STILL
    assert summary.blink_rate_ci[0] <= summary.blink_rate <= summary.blink_rate_ci[1]
    assert report.quality.smile_threshold == 0.5 and report.quality.max_gaze_yaw_deg == 25


def test_a_study_without_descriptions_has_no_action_figures() -> None:
    report = study_report(study("s", SECONDS), panel(12, smiling=6, on_device=12), CLASSES, 0.5, SETTINGS)
    assert report.actions is None and all(second.actions is None for second in report.seconds)


def test_compare_tests_the_actions_as_it_tests_the_emotions() -> None:
    smiling = panel(20, smiling=16, blink_every=2)
    calm = panel(20, smiling=0, blink_every=4)
    two = (study("a", SECONDS), study("b", SECONDS))
    actions = compare_studies(two, (smiling, calm), CLASSES, 0.5, SETTINGS).actions
    assert actions.viewers == (20, 20) and actions.smile_ever_share == (0.8, 0.0)
    assert actions.smile_ever_share_p < 0.001 and actions.smile_ever_share_test == "z"
    assert {d.t for d in actions.smile_differing_seconds} == set(SMILING)
    assert actions.expressiveness.difference > 0 and actions.expressiveness.p < 0.001
    assert actions.blink_rate.difference > 0 and actions.blink_rate.ci[0] > 0 and actions.blink_rate.p < 0.05
    same = compare_studies(two, (smiling, smiling), CLASSES, 0.5, SETTINGS)
    assert same.actions.smile_differing_seconds == [] and same.actions.blink_rate.p == 1.0


def test_the_blink_rate_counts_only_seconds_with_a_described_face() -> None:
    blinks = np.array([[1.0, 0, 0, 1, 0, 0, 0]])
    seen = np.array([[True, True, True, True, False, False, True]])
    rates = windowed_blink_rate(blinks, seen)
    assert rates[0, 0] == pytest.approx(60 * 1 / 3)  # seconds 0..2: one blink in three seen
    assert rates[0, 3] == pytest.approx(60 * 1 / 3)  # seconds 1..5, of which 1..3 were seen
    assert np.isnan(rates[0, 4]) and rates[0, 6] == 0
    short = windowed_blink_rate(np.array([[1.0, 0]]), np.array([[True, True]]))  # shorter than the window
    assert short.tolist() == [[30.0, 30.0]]
