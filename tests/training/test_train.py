import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.inference.model_store import graph_path
from tests.helpers.data import fer2013_dir
from training.train import TrainConfig, blended_loss, class_weights, distillation_loss, train


def quick_config(out: Path) -> TrainConfig:
    return TrainConfig(
        data=str(fer2013_dir()),
        out=str(out),
        width=32,  # half the default: a quarter of the arithmetic, the same code paths
        epochs=2,
        train_limit=1000,
        val_limit=200,
        batch_size=64,
        lr=0.05,
        mix_prob=0.5,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("run")
    return out, train(quick_config(out))


def test_loss_falls_on_real_faces(trained: tuple[Path, list[dict]]) -> None:
    _, rows = trained
    assert len(rows) == 2
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["train_acc"] > 1 / 7


def test_run_leaves_checkpoints_logs_and_plots(trained: tuple[Path, list[dict]]) -> None:
    out, _ = trained
    for name in ("last.pt", "best.pt", "log.csv", "curves.png", "confusion.png", "config.json"):
        assert (out / name).stat().st_size > 0, name


def test_a_stopped_run_resumes_where_it_left_off(trained: tuple[Path, list[dict]], tmp_path: Path) -> None:
    _, straight = trained
    first = train(quick_config(tmp_path), stop_after=1)
    assert [r["epoch"] for r in first] == [1]
    resumed = train(dataclasses.replace(quick_config(tmp_path), epochs=99), resume=True)  # saved config wins
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(resumed, straight):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)


def test_a_run_can_start_from_another_runs_weights(trained: tuple[Path, list[dict]], tmp_path: Path) -> None:
    """A second cycle from a finished run: with a learning rate too small to move them, its weights
    are still the ones it started from (a fresh start would draw new random ones)."""
    source, _ = trained
    train(dataclasses.replace(quick_config(tmp_path), epochs=1, lr=1e-7, init=str(source / "best.pt")))
    started, ended = (torch.load(run / "best.pt", weights_only=False)["ema"] for run in (source, tmp_path))
    weights = [name for name, tensor in started.items() if tensor.ndim > 1]
    assert weights
    for name in weights:
        torch.testing.assert_close(ended[name], started[name], atol=1e-4, rtol=0)


def test_blended_loss_is_cross_entropy_when_nothing_is_blended_and_symmetric_otherwise() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 7, generator=generator)
    first, second = torch.arange(32) % 7, torch.randint(7, (32,), generator=generator)
    weights = class_weights(torch.tensor([3995, 436, 4097, 7215, 4830, 3171, 4965]), 0.3)
    plain = F.cross_entropy(logits, first, weight=weights, label_smoothing=0.1)
    assert blended_loss(logits, (first, second), torch.ones(32), weights, 0.1) == pytest.approx(float(plain))
    share = torch.rand(32, generator=generator)
    forward = blended_loss(logits, (first, second), share, weights, 0.1)
    assert blended_loss(logits, (second, first), 1 - share, weights, 0.1) == pytest.approx(float(forward))
    assert forward != pytest.approx(float(plain))


def test_a_distilled_run_learns_from_the_teachers_answers_on_its_views_and_computes_them_once(
    float16_export: Path, tmp_path: Path
) -> None:
    config = dataclasses.replace(
        quick_config(tmp_path),
        epochs=2,
        train_limit=300,
        val_limit=100,
        teacher=str(graph_path(float16_export)),
        teacher_views=2,
    )
    train(config, stop_after=1)
    caches = sorted(tmp_path.glob("teacher_view_*.npz"))
    assert [c.name for c in caches] == ["teacher_view_0.npz", "teacher_view_1.npz", "teacher_view_2.npz"]
    stored = [np.load(c) for c in caches]
    for view in stored:
        assert view["images"].shape == (300, 48, 48) and view["images"].dtype == np.uint8
        assert view["probabilities"].shape == (300, 7)
        assert np.allclose(view["probabilities"].sum(1), 1, atol=1e-4)
    # The copies are augmented (different pixels), and the teacher's answers follow them.
    assert (stored[1]["images"] != stored[0]["images"]).mean() > 0.3
    assert not np.allclose(stored[1]["probabilities"], stored[0]["probabilities"], atol=1e-3)
    computed_at = [c.stat().st_mtime_ns for c in caches]
    rows = train(config, resume=True)
    assert [c.stat().st_mtime_ns for c in caches] == computed_at  # the resumed run read them back
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_distillation_loss_is_least_when_the_student_matches_the_teacher() -> None:
    generator = torch.Generator().manual_seed(0)
    teacher = torch.softmax(torch.randn(32, 7, generator=generator) * 2, dim=1)
    matching = teacher.log().requires_grad_()
    loss = distillation_loss(matching, teacher, temperature=2.0)
    loss.backward()
    assert matching.grad.abs().max() < 1e-6
    other = teacher.log() + torch.randn(32, 7, generator=generator)
    assert distillation_loss(other, teacher, temperature=2.0) > loss
    # At temperature 1 it is the plain cross-entropy against the teacher's probabilities.
    assert distillation_loss(other, teacher, 1.0) == pytest.approx(float(F.cross_entropy(other, teacher)))


def test_face_weights_scale_each_face_in_the_loss() -> None:
    """Weights 2 and 0 give the loss of the first face alone; equal weights change nothing."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
    labels = torch.tensor([0, 2])
    share, classes = torch.ones(2), torch.ones(3)
    plain = blended_loss(logits, (labels, labels), share, classes, 0.0)
    assert blended_loss(logits, (labels, labels), share, classes, 0.0, torch.full((2,), 3.0)) == pytest.approx(plain)
    first_alone = blended_loss(logits[:1], (labels[:1], labels[:1]), share[:1], classes, 0.0)
    weighted = blended_loss(logits, (labels, labels), share, classes, 0.0, torch.tensor([2.0, 0.0]))
    assert weighted == pytest.approx(first_alone)
