"""Peak Response Mapping (PRM): the classifier whose class peaks seed CIM's PCL clusters.

"FC-ResNet50": ResNet-50 conv1..layer4 (stride 32, 2048 channels) and a 1x1 conv (with bias) to
one response map per class. The maps are upsampled bilinearly (align_corners) by ``upsample``
(8: a 448x448 input gives 112x112 maps) and each class's logit is the mean response at that
class's peaks (:mod:`rem_models.cim.peaks`), so training only sharpens the peaks.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import Field, model_validator
from torch import nn
from torchvision.models import resnet50

from rem_core.errors import RemError
from rem_models.cim.peaks import peak_aggregation, peak_map
from rem_models.registry import ModelConfig, register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PrmConfig(ModelConfig):
    """PRM: ``backbone`` ``resnet50`` (stride 32) or ``tiny`` (four strided convs, stride 16, CPU
    tests); images are resized to ``input_size`` squared; maps upsampled by ``upsample``."""

    backbone: Literal["resnet50", "tiny"] = "resnet50"
    num_classes: int = Field(20, gt=0)
    input_size: int = Field(448, gt=0)
    upsample: int = Field(8, ge=1)
    tiny_width: int = Field(16, gt=0)

    @property
    def stride(self) -> int:
        return 32 if self.backbone == "resnet50" else 16

    @model_validator(mode="after")
    def _whole_cells(self) -> PrmConfig:
        # The peak frame maps back to pixels as input_size / stride * upsample cells.
        if self.input_size % self.stride:
            raise ValueError(f"input_size must be a multiple of the stride {self.stride}")
        return self


def resnet50_features() -> nn.Sequential:
    """ResNet-50 up to layer4 with torchvision's module names (``conv1`` ... ``layer4``), so an
    ImageNet state dict loads after dropping ``fc``."""
    net = resnet50(weights=None)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))


def tiny_features(width: int) -> nn.Sequential:
    """Four stride-2 3x3 conv + BN + ReLU blocks (stride 16, ``4 * width`` channels)."""
    chans = [3, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for cin, cout in pairwise(chans):
        layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    return nn.Sequential(*layers)


class PrmModel(nn.Module):
    """Fully convolutional classifier with peak stimulation.

    Input (B, 3, S, S) ImageNet-normalised RGB (see :func:`preprocess`); ``response_maps``
    returns (B, C, S/stride*upsample, ...) maps, ``forward`` the (B, C) peak-mean logits.
    ``features`` is the backbone (trained at a lower lr), ``classifier`` the 1x1 conv.
    """

    def __init__(self, features: nn.Module, channels: int, stride: int, config: PrmConfig) -> None:
        super().__init__()
        self.features = features
        self.classifier = nn.Conv2d(channels, config.num_classes, 1, bias=True)
        self.stride = stride
        self.input_size = config.input_size
        self.upsample = config.upsample

    @property
    def frame_size(self) -> int:
        """Side of the square peak frame (112 for 448 input, stride 32, upsample 8)."""
        return self.input_size // self.stride * self.upsample

    def response_maps(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.classifier(self.features(images))
        if self.upsample > 1:
            maps = F.interpolate(
                maps, scale_factor=self.upsample, mode="bilinear", align_corners=True
            )
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.response_maps(images)
        return peak_aggregation(maps, peak_map(maps))


def preprocess(image: np.ndarray, size: int, flip: bool = False) -> torch.Tensor:
    """(3, size, size) float: (H, W, 3) uint8 RGB resized (PIL bilinear, aspect not kept, as
    PRM), optionally mirrored, scaled to 0-1 and ImageNet-normalised."""
    resized = np.array(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    if flip:
        resized = resized[:, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def load_imagenet_backbone(model: PrmModel, path: str | Path) -> None:
    """Load torchvision ResNet-50 ImageNet weights (a weights-only torch or safetensors file)
    into ``model.features``; the ``fc`` layer is dropped, anything else must match."""
    from rem_models.checkpoints import load_state_dict_file

    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("fc.")}
    expected = model.features.state_dict()
    problems = {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "wrong shape": [k for k in expected if k in state and state[k].shape != expected[k].shape],
    }
    found = [f"{len(keys)} {kind} (first {keys[0]!r})" for kind, keys in problems.items() if keys]
    if found:
        raise RemError(
            f"not ResNet-50 ImageNet weights for the PRM backbone: {'; '.join(found)}", path=path
        )
    model.features.load_state_dict(state)


def build_prm(config: PrmConfig) -> PrmModel:
    """The PRM of ``config`` with random weights."""
    if config.backbone == "resnet50":
        return PrmModel(resnet50_features(), 2048, config.stride, config)
    return PrmModel(tiny_features(config.tiny_width), 4 * config.tiny_width, config.stride, config)


@register_model("prm_r50", config=PrmConfig())
def prm_r50(config: PrmConfig) -> PrmModel:
    """PRM (FC-ResNet50, 448x448 input, 112x112 peak frame) for CIM's peaks."""
    return build_prm(config)


@register_model(
    "prm_test", config=PrmConfig(backbone="tiny", num_classes=3, input_size=128, tiny_width=16)
)
def prm_test(config: PrmConfig) -> PrmModel:
    """Tiny PRM for CPU tests (four strided convs, 128x128 input, 64x64 peak frame)."""
    return build_prm(config)
