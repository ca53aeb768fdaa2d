"""Train an emotion classifier on FER-2013; select and early-stop on PublicTest (`test/`).

    python -m training.train --out runs/xception                # a full run
    python -m training.train --out runs/xception --resume       # carry on after a stop
    python -m training.train --out runs/xception --resume --stop-after 20   # train in bounded chunks

Every epoch writes `last.pt` (everything needed to resume), `log.csv` and `curves.png`; the best
epoch by flip-averaged PublicTest accuracy is kept as `best.pt`, which `training.export` reads.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.data import CLASSES, Augment, Dataset, Mix, load_split
from training.evaluate import onnx_probabilities
from training.metrics import classification_report, plot_confusion, plot_curves
from training.model import ModelConfig, build_network, count_macs, count_parameters

# bf16 autocast only where the CPU computes bf16 natively (AVX-512 BF16, AMX): about twice as fast
# there, and emulated elsewhere, ten times slower than float32 (measured on an AVX2 AMD EPYC).
NATIVE_BF16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class TrainConfig:
    data: str = "../shared/data/fer2013"  # a folder-layout root or a fer2013.csv
    out: str = "runs/xception"
    arch: str = "xception"
    width: int = 64
    dropout: float = 0.3
    epochs: int = 70
    batch_size: int = 128
    lr: float = 0.1  # peak of the one-cycle schedule, or the plateau schedule's start
    # "onecycle": warm up to `lr`, then anneal over `epochs`. "plateau": start at `lr` and divide it
    # by 10 after `plateau_patience` epochs without a better PublicTest accuracy, for long runs
    # that early stopping ends (the recipe of the deep VGG member).
    schedule: str = "onecycle"
    plateau_patience: int = 5
    momentum: float = 0.9
    weight_decay: float = 3e-4  # on conv and linear weights only
    label_smoothing: float = 0.1
    # Training augmentation (data.Augment): rotation in degrees, zoom and shift as fractions of the side.
    max_rotation_deg: float = 12.0
    max_scale: float = 0.10
    max_shift: float = 0.10
    # Loss weight per class is (count)^-class_balance, normalised: 0 is plain cross-entropy. A mild
    # value lifts the rare disgust class (1.5% of the data) without costing overall accuracy.
    class_balance: float = 0.3
    ema_decay: float = 0.999  # the evaluated and shipped weights are this moving average
    # Share of training faces blended with another by mixup or CutMix (see data.Mix); 0 turns it off.
    mix_prob: float = 0.0
    mix_alpha: float = 1.0
    # Knowledge distillation: an exported model (e.g. model_store/emotion/6/model.onnx.gz) whose
    # probabilities become soft targets. They say which other expressions a face resembles, and
    # where the teacher disagrees with FER-2013's noisy labels (version 5 does on 14% of the
    # training faces). The teacher answers on the very views the student sees: answers on clean
    # faces, paired with augmented inputs, did not beat plain training.
    teacher: str = ""
    # Augmented copies of each training face, made and answered by the teacher once per run (the
    # clean face is one more). Distilled runs train on these copies, mirrored at random: the
    # teacher's graph averages each face with its mirror, so its answer holds for both.
    teacher_views: int = 6
    distill_weight: float = 0.7  # share of the loss given to the teacher's targets
    distill_temperature: float = 2.0  # softens both distributions in the distillation term
    patience: int = 20  # stop after this many epochs without a better PublicTest accuracy
    # A .npy of one loss weight per training face, in load order (e.g. `training.fairness --weights`:
    # each perceived gender group weighing as much as the others); empty: every face weighs 1.
    sample_weights: str = ""
    # Keep batch norms on their stored statistics: fine-tuning a network rebuilt by training.recover,
    # whose batch norms were folded away at export, must not renormalise with batch statistics.
    freeze_norm: bool = False
    # Start from another run's shipped weights (its best.pt) and train a fresh one-cycle schedule
    # from there: a second cycle at a lower peak lifts a short run further than it would climb alone.
    init: str = ""
    # Pretrained networks (arch efficientnet_lite0): faces upsampled to this side, and the backbone's
    # learning rate as a share of `lr`, so fine-tuning moves the pretrained filters slowly.
    input_size: int = 112
    backbone_lr_scale: float = 1.0
    seed: int = 0
    threads: int = 2
    bf16: bool = NATIVE_BF16  # autocast where the CPU has it
    channels_last: bool = True  # much faster depthwise convolutions on CPU
    train_limit: int = 0  # use only this many training images (0: all), for quick checks
    val_limit: int = 0


def parse_args() -> tuple[TrainConfig, bool, int]:
    """Every TrainConfig field is a flag of the same name; --resume and --stop-after steer this invocation."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(TrainConfig):
        if field.type == "bool":
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, default=field.default)
        else:
            kind = {"int": int, "float": float, "str": str}[field.type]
            parser.add_argument(f"--{field.name}", type=kind, default=field.default)
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--stop-after", type=int, default=0, help="end after this many epochs; --resume continues")
    args = vars(parser.parse_args())
    resume, stop_after = args.pop("resume"), args.pop("stop_after")
    return TrainConfig(**args), resume, stop_after


def to_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 [B, 48, 48] to the network's float [B, 1, 48, 48] in [0, 1]."""
    x = images.unsqueeze(1).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor:
    weights = counts.clamp(min=1).float().pow(-power)
    return weights * len(counts) / weights.sum()


def blended_loss(
    logits: torch.Tensor,
    labels: tuple[torch.Tensor, torch.Tensor],
    share: torch.Tensor,
    weights: torch.Tensor,
    label_smoothing: float,
    face_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-weighted cross-entropy against two labels per face, the first counting `share` of it,
    each face's term scaled by its own weight if given.

    Normalised by the summed weights like `F.cross_entropy(weight=...)`, so with a share of 1 for
    every face (nothing blended) and no face weights the two give the same loss.
    """
    first, second = labels
    loss_first = F.cross_entropy(logits, first, weight=weights, label_smoothing=label_smoothing, reduction="none")
    loss_second = F.cross_entropy(logits, second, weight=weights, label_smoothing=label_smoothing, reduction="none")
    scale = torch.ones_like(share) if face_weights is None else face_weights
    total = (scale * (share * loss_first + (1 - share) * loss_second)).sum()
    return total / (scale * (share * weights[first] + (1 - share) * weights[second])).sum()


@dataclass(frozen=True)
class TeacherViews:
    """Copies of every training face, uint8 [V, N, 48, 48], and the teacher's probabilities on each [V, N, 7]."""

    images: torch.Tensor
    probabilities: torch.Tensor


def teacher_views(
    teacher: Path, faces: torch.Tensor, copies: int, generator: torch.Generator, folder: Path
) -> TeacherViews:
    """The clean faces and `copies` augmented copies, with the teacher's answers, computed once per run.

    Each view is saved as it is finished, so a run stopped while computing them resumes there.
    The graph carries its own test-time views, so these are the answers the teacher would serve.
    Copies are not mirrored here (see TeacherViews' use in `train`).
    """
    augment = Augment(flip=False)
    images, probabilities = [], []
    for view in range(copies + 1):
        cache = folder / f"teacher_view_{view}.npz"
        if not cache.exists():
            x = faces if view == 0 else augmented_copy(faces, augment, generator)
            partial = cache.with_suffix(".tmp.npz")
            np.savez(partial, images=x.numpy(), probabilities=onnx_probabilities(teacher, x.numpy()))
            partial.replace(cache)
            print(f"teacher view {view} of {copies}: computed", flush=True)
        with np.load(cache) as stored:
            images.append(torch.from_numpy(stored["images"]))
            probabilities.append(torch.from_numpy(stored["probabilities"]))
    return TeacherViews(torch.stack(images), torch.stack(probabilities))


def augmented_copy(faces: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """One augmented copy of uint8 faces [N, 48, 48], as uint8, a batch at a time to bound memory."""
    out = torch.empty_like(faces)
    for i in range(0, len(faces), 4096):
        x = augment(to_input(faces[i : i + 4096], False), generator)
        out[i : i + 4096] = x.squeeze(1).mul(255).round().clamp(0, 255).to(torch.uint8)
    return out


def mirror_some(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of float images [B, 1, H, W]."""
    chosen = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(chosen.view(-1, 1, 1, 1), torch.flip(images, dims=[3]), images)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student against the teacher, both softened by the temperature.

    Scaled by temperature squared so its gradients keep the size of the hard-label loss's (Hinton
    et al., 2015). The teacher gives probabilities, so its logits are their logarithms.
    """
    target = torch.softmax(teacher_probs.clamp(min=1e-8).log() / temperature, dim=1)
    return -(target * F.log_softmax(logits / temperature, dim=1)).sum(1).mean() * temperature**2


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Weight decay on conv and linear weights only; a pretrained backbone at `backbone_lr_scale` of the rate."""
    slow = {id(p) for p in getattr(model, "backbone_parameters", list)()}
    groups = []
    for pretrained in (False, True):
        rate = config.lr * (config.backbone_lr_scale if pretrained else 1.0)
        chosen = [p for p in model.parameters() if (id(p) in slow) == pretrained]
        for decayed in (True, False):
            params = [p for p in chosen if (p.ndim > 1) == decayed]
            if params:
                groups.append({"params": params, "lr": rate, "weight_decay": config.weight_decay if decayed else 0.0})
    return groups


def learning_rate_schedule(
    optimizer: torch.optim.Optimizer, groups: list[dict], config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The run's schedule: one-cycle (stepped every batch) or reduce-on-plateau (stepped every epoch)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.1, patience=config.plateau_patience
        )
    if config.schedule != "onecycle":
        raise ValueError(f"unknown schedule {config.schedule!r}")
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in groups], total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


@torch.no_grad()
def predict(model: nn.Module, data: Dataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities [N, 7] of the faces and of their mirror images.

    Per-epoch numbers use bf16 like training, for speed; the shipped figure comes from the
    exported ONNX graph (`training.evaluate`).
    """
    model.eval()
    plain, mirrored = [], []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        for i in range(0, len(data), 512):
            x = to_input(data.images[i : i + 512], config.channels_last)
            plain.append(torch.softmax(model(x).float(), dim=1))
            mirrored.append(torch.softmax(model(torch.flip(x, dims=[3])).float(), dim=1))
    return torch.cat(plain).numpy(), torch.cat(mirrored).numpy()


def evaluate(model: nn.Module, data: Dataset, config: TrainConfig) -> dict:
    probs, probs_mirrored = predict(model, data, config)
    probs_flip = (probs + probs_mirrored) / 2
    labels = data.labels.numpy()
    nll = -np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)).mean()
    return {
        "val_loss": float(nll),
        "val_acc": float((probs.argmax(1) == labels).mean()),
        "val_acc_flip": float((probs_flip.argmax(1) == labels).mean()),
        "report": classification_report(labels, probs_flip.argmax(1)),
    }


def save_atomic(obj: dict, path: Path) -> None:
    """Write then rename, so a stop mid-write never leaves a broken checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(config: TrainConfig, resume: bool = False, stop_after: int = 0) -> list[dict]:
    """Run (or continue) training; returns the per-epoch log. Writes everything under config.out."""
    out = Path(config.out)
    if resume and (out / "config.json").exists():
        # The schedule and data depend on the whole config: a resumed run keeps the one it began with.
        config = TrainConfig(**json.loads((out / "config.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    train = load_split(Path(config.data), "train", config.train_limit, generator)
    val = load_split(Path(config.data), "test", config.val_limit, generator)
    print(f"train {len(train)} images, PublicTest {len(val)} images")

    model_config = ModelConfig(config.arch, config.width, config.dropout, config.input_size)
    model = build_network(model_config, pretrained=not config.init)
    print(f"{config.arch}: {count_parameters(model) / 1e6:.2f}M parameters, {count_macs(model) / 1e6:.0f}M MACs")
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.init:
        model.load_state_dict(torch.load(config.init, weights_only=False)["ema"])
    ema = copy.deepcopy(model).eval()

    groups = parameter_groups(model, config)
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    scheduler = learning_rate_schedule(optimizer, groups, config, math.ceil(len(train) / config.batch_size))
    weights = class_weights(train.class_counts(), config.class_balance)
    face_weights = torch.from_numpy(np.load(config.sample_weights)).float() if config.sample_weights else None
    if face_weights is not None and len(face_weights) != len(train):
        raise ValueError(f"{config.sample_weights} has {len(face_weights)} weights for {len(train)} training faces")
    views = None
    if config.teacher:
        # Its own generator: how many copies are made does not change the training run's draws.
        view_generator = torch.Generator().manual_seed(config.seed + 1)
        views = teacher_views(Path(config.teacher), train.images, config.teacher_views, view_generator, out)
        agreement = (views.probabilities[0].argmax(1) == train.labels).float().mean()
        print(f"teacher {config.teacher}: agrees with {agreement:.1%} of the training labels")
    augment = Augment(max_rotation_deg=config.max_rotation_deg, max_scale=config.max_scale, max_shift=config.max_shift)
    mix = Mix(config.mix_prob, config.mix_alpha)

    rows: list[dict] = []
    best_acc, start_epoch, step = 0.0, 0, 0
    if resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt", weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        rows, best_acc, start_epoch, step = state["rows"], state["best_acc"], state["epoch"], state["step"]
        print(f"resumed after epoch {start_epoch}, best PublicTest accuracy so far {best_acc:.4f}")
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))

    last_epoch = min(config.epochs, start_epoch + stop_after) if stop_after else config.epochs
    for epoch in range(start_epoch + 1, last_epoch + 1):
        model.train()
        if config.freeze_norm:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        started = time.time()
        order = torch.randperm(len(train), generator=generator)
        loss_sum, correct = 0.0, 0
        for i in tqdm(range(0, len(train), config.batch_size), desc=f"epoch {epoch}", disable=None, leave=False):
            idx = order[i : i + config.batch_size]
            if views is None:
                x = augment(to_input(train.images[idx], False), generator)
            else:
                view = torch.randint(len(views.images), (len(idx),), generator=generator)
                x = mirror_some(to_input(views.images[view, idx], False), generator)
                teacher = views.probabilities[view, idx]
            # Mix blends batch positions; labels and teacher targets follow the same pairs of faces.
            x, first, second, share = mix(x, torch.arange(len(idx)), generator)
            y, y_partner = train.labels[idx[first]], train.labels[idx[second]]
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(x).float()
            # A blended face weighs as its first face does: mixing is off in the runs that weigh faces.
            own = None if face_weights is None else face_weights[idx[first]]
            loss = blended_loss(logits, (y, y_partner), share, weights, config.label_smoothing, own)
            if views is not None:
                blend = share.view(-1, 1)
                target = blend * teacher[first] + (1 - blend) * teacher[second]
                soft = distillation_loss(logits, target, config.distill_temperature)
                loss = (1 - config.distill_weight) * loss + config.distill_weight * soft
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.schedule == "onecycle":
                scheduler.step()
            step += 1
            # Early in training the average would be dominated by random weights: ramp the decay up.
            update_ema(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()

        result = evaluate(ema, val, config)
        report = result.pop("report")
        if config.schedule == "plateau":
            scheduler.step(result["val_acc_flip"])
        row = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / len(train),
            "train_acc": correct / len(train),
            **result,
            "val_macro_f1": report.macro_f1,
            "val_disgust_recall": report.recall["disgust"],
            "seconds": time.time() - started,
        }
        rows.append(row)
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

        if row["val_acc_flip"] > best_acc:
            best_acc = row["val_acc_flip"]
            save_atomic(
                {
                    "ema": ema.state_dict(),
                    "model_config": dataclasses.asdict(model_config),
                    "train_config": dataclasses.asdict(config),
                    "epoch": epoch,
                    "metrics": row,
                    "report": report.as_dict(),
                },
                out / "best.pt",
            )
            plot_confusion(report, out / "confusion.png", f"{config.arch}, epoch {epoch}, PublicTest, flip-averaged")
        save_atomic(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "rows": rows,
                "best_acc": best_acc,
                "epoch": epoch,
                "step": step,
            },
            out / "last.pt",
        )
        with (out / "log.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        plot_curves(rows, out / "curves.png")

        best_epoch = max(rows, key=lambda r: r["val_acc_flip"])["epoch"]
        if epoch - best_epoch >= config.patience:
            print(f"no better PublicTest accuracy for {config.patience} epochs: stopping")
            break
    print(f"best PublicTest accuracy (flip-averaged) {best_acc:.4f}; classes {', '.join(CLASSES)}")
    return rows


def main() -> None:
    train(*parse_args())


if __name__ == "__main__":
    main()
