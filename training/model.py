"""The emotion classifiers: an Xception-inspired network and VGG- and ResNet-style alternatives.

All take grayscale faces as float [B, 1, 48, 48] scaled to [0, 1] and return logits over the
seven FER-2013 classes. Normalisation lives inside the network so the exported graph needs no
preprocessing beyond the 1/255 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

NUM_CLASSES = 7
PIXEL_MEAN, PIXEL_STD = 0.5, 0.25  # roughly FER-2013's grey-level statistics


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    )


class SeparableConv(nn.Sequential):
    """Xception's building block: ReLU, depthwise 3x3, pointwise 1x1, batch norm."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class XceptionBlock(nn.Module):
    """`depth` separable convs with a residual shortcut; downsampling blocks end in a max-pool."""

    def __init__(self, c_in: int, c_out: int, depth: int, downsample: bool) -> None:
        super().__init__()
        layers = [SeparableConv(c_in if i == 0 else c_out, c_out) for i in range(depth)]
        if downsample:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.body = nn.Sequential(*layers)
        stride = 2 if downsample else 1
        self.shortcut = nn.Identity() if c_in == c_out and not downsample else conv_bn(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs and a (projected when needed) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, 3, stride), nn.ReLU(), conv_bn(c_out, c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else conv_bn(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@dataclass(frozen=True)
class ModelConfig:
    # "xception", "vgg", "vgg_deep", "resnet", "resnet_fullres" or "efficientnet_lite0" (pretrained)
    arch: str = "xception"
    width: int = 64  # channels after the stem; stages double it (not used by the pretrained network)
    dropout: float = 0.3
    input_size: int = 112  # the pretrained network's input side, faces upsampled to it


PRETRAINED_ARCHS = ("efficientnet_lite0",)


def build_network(config: ModelConfig, pretrained: bool = False) -> nn.Module:
    """The network a config names; `pretrained` loads the ImageNet weights of a pretrained one (to start training)."""
    if config.arch in PRETRAINED_ARCHS:
        from training.pretrained import PretrainedLite0  # only this network needs its packages

        return PretrainedLite0(NUM_CLASSES, config.input_size, config.dropout, pretrained)
    if config.arch == "vgg_deep":
        return DeepVGG(config.width, config.dropout)
    return EmotionNet(config)


def vgg_stage(c_in: int, c_out: int, depth: int) -> list[nn.Module]:
    """Halve the resolution, then `depth` plain 3x3 conv, batch norm, ReLU layers."""
    layers: list[nn.Module] = [nn.MaxPool2d(2)]
    for i in range(depth):
        layers += [conv_bn(c_in if i == 0 else c_out, c_out), nn.ReLU()]
    return layers


class EmotionNet(nn.Module):
    """A stem, stages down to 6x6, then a pooled linear head.

    The Xception and ResNet variants start with a stride-2 stem (24x24), which keeps an epoch near
    a minute on two CPU cores. The VGG variant keeps one cheap layer at the full 48x48, where
    the fine detail of eyes and mouth lives, and spends its depth at the coarser scales instead.
    The full-resolution ResNet variant does both: a narrow layer at 48x48 (cheap, as its input is
    one channel) feeds the stride-2 convolution, so the downsampling sees edges, not raw pixels.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        w = config.width
        if config.arch == "resnet_fullres":
            self.stem = nn.Sequential(conv_bn(1, w // 2), nn.ReLU(), conv_bn(w // 2, w, stride=2), nn.ReLU())
        else:
            self.stem = nn.Sequential(conv_bn(1, w, stride=1 if config.arch == "vgg" else 2), nn.ReLU())
        if config.arch == "vgg":
            # 48 -> 24 -> 12 -> 6, deeper where the maps are small and convolutions cheap.
            self.features = nn.Sequential(
                *vgg_stage(w, 2 * w, depth=2), *vgg_stage(2 * w, 4 * w, depth=3), *vgg_stage(4 * w, 8 * w, depth=3)
            )
            head_width = 8 * w
        elif config.arch == "xception":
            # Entry flow (24 -> 12 -> 6), middle flow at 6x6, exit flow widening before pooling.
            self.features = nn.Sequential(
                XceptionBlock(w, 2 * w, depth=2, downsample=True),
                XceptionBlock(2 * w, 4 * w, depth=2, downsample=True),
                *[XceptionBlock(4 * w, 4 * w, depth=3, downsample=False) for _ in range(4)],
                SeparableConv(4 * w, 8 * w),
                nn.ReLU(),
            )
            head_width = 8 * w
        elif config.arch in ("resnet", "resnet_fullres"):
            self.features = nn.Sequential(
                BasicBlock(w, w, 1),
                BasicBlock(w, 2 * w, 2),
                BasicBlock(2 * w, 2 * w, 1),
                BasicBlock(2 * w, 4 * w, 2),
                BasicBlock(4 * w, 4 * w, 1),
            )
            head_width = 4 * w
        else:
            raise ValueError(f"unknown arch {config.arch!r}")
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(head_width, NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - PIXEL_MEAN) / PIXEL_STD
        return self.head(self.features(self.stem(x)))


class DeepVGG(nn.Module):
    """Two full-width 3x3 layers per scale from 48x48 down to 3x3, then a wide two-layer classifier.

    The recipe of the best from-scratch FER-2013 networks (about 73% alone): unlike EmotionNet's
    pooled head, the flattened 3x3 map keeps where on the face each feature fired. A different
    family from the ensemble's ResNet-style members, so it makes different mistakes.
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn(1, w), nn.ReLU(), conv_bn(w, w), nn.ReLU())
        self.features = nn.Sequential(
            *vgg_stage(w, 2 * w, depth=2), *vgg_stage(2 * w, 4 * w, depth=2), *vgg_stage(4 * w, 8 * w, depth=2)
        )
        self.head = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(8 * w * 9, 16 * w),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(16 * w, 16 * w),
            nn.ReLU(),
            nn.Linear(16 * w, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - PIXEL_MEAN) / PIXEL_STD
        return self.head(self.features(self.stem(x)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates of one 48x48 forward pass, counted over conv and linear layers."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 48, 48))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total


class ServingModel(nn.Module):
    """What ships: class probabilities averaged over member networks and over views of each face.

    Expressions are left-right symmetric, so the mirror is a free second opinion; faces come from a
    detector whose boxes vary a little in size, so slightly tighter and looser crops are two more;
    and networks of different design make different mistakes, so their average beats each of them.
    Folding all of it into the exported graph gives the service the whole ensemble in one
    onnxruntime call. Each extra view costs one more pass of every network.
    """

    def __init__(self, nets: Sequence[nn.Module], mirror: bool = True, crop_scales: Sequence[float] = ()) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.mirror = mirror
        # One sampling grid per extra crop: scale 0.9 samples the central 90% of the face (zooming
        # in), 1.1 reaches 5% past each edge, repeating the border pixels.
        grids = [
            nn.functional.affine_grid(
                torch.tensor([[[s, 0.0, 0.0], [0.0, s, 0.0]]]), [1, 1, 48, 48], align_corners=False
            )
            for s in crop_scales
        ]
        self.register_buffer("grids", torch.cat(grids) if grids else torch.zeros(0, 48, 48, 2), persistent=False)

    @property
    def views_per_face(self) -> int:
        return (1 + len(self.grids)) * (2 if self.mirror else 1)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        crops = [x] + [
            nn.functional.grid_sample(
                x, grid.expand(x.shape[0], -1, -1, -1), padding_mode="border", align_corners=False
            )
            for grid in self.grids
        ]
        return crops + [torch.flip(crop, dims=[3]) for crop in crops] if self.mirror else crops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # All views go through each network as one batch: a few large operations instead of one
        # small one per view, which makes a single face about a quarter faster on two CPU cores.
        views = torch.cat(self.views(x))
        probs = torch.stack([torch.softmax(net(views), dim=1) for net in self.nets])
        return probs.reshape(-1, x.shape[0], NUM_CLASSES).mean(dim=0)
