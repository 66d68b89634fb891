"""Backbones of CIM: ResNet-50 to res4, VGG16 with dilated conv5, HRNet-W48-C (in
:mod:`rem_models.cim.hrnet`) and a tiny CPU test net.

Each takes (B, 3, H, W) ImageNet-normalised RGB and returns one feature map; ``stride`` and
``channels`` describe it.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.vgg import cfgs, make_layers
from torchvision.ops import FrozenBatchNorm2d

from rem_models.cim.config import CimConfig


class ResNet50Res4(nn.Module):
    """ResNet-50 stem + res2..res4 (stride 16, 1024 channels), frozen batch norm (batch of 1)."""

    stride = 16
    channels = 1024

    def __init__(self) -> None:
        super().__init__()
        net = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.res2, self.res3, self.res4 = net.layer1, net.layer2, net.layer3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res4(self.res3(self.res2(self.stem(x))))


class Vgg16Dilated(nn.Module):
    """VGG16 conv1-conv5 without pool4/pool5, conv5 dilated by 2 (stride 8, 512 channels)."""

    stride = 8
    channels = 512

    def __init__(self) -> None:
        super().__init__()
        # VGG16's conv layers only (config "D"): the fc classifier would be 120M unused params.
        layers = list(make_layers(cfgs["D"]))
        kept = []
        for i, layer in enumerate(layers):
            if i in (23, 30):  # pool4, pool5: keep stride 8 for small objects
                continue
            if i >= 24 and isinstance(layer, nn.Conv2d):
                layer.dilation, layer.padding = (2, 2), (2, 2)
            kept.append(layer)
        self.features = nn.Sequential(*kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class TinyBackbone(nn.Module):
    """Three stride-2 3x3 convs with GroupNorm (stride 8): CIM on CPU in seconds."""

    stride = 8

    def __init__(self, width: int) -> None:
        super().__init__()
        self.channels = width
        layers: list[nn.Module] = []
        c_in = 3
        for _ in range(3):
            layers += [
                nn.Conv2d(c_in, width, 3, stride=2, padding=1),
                nn.GroupNorm(4 if width % 4 == 0 else 1, width),
                nn.ReLU(inplace=True),
            ]
            c_in = width
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_backbone(config: CimConfig) -> nn.Module:
    """The backbone named by ``config.backbone``."""
    if config.backbone == "resnet50":
        return ResNet50Res4()
    if config.backbone == "vgg16":
        return Vgg16Dilated()
    if config.backbone == "hrnet":
        from rem_models.cim.hrnet import HRNetCls  # timm is optional: import on use

        return HRNetCls(config.hrnet_width, config.hrnet_freeze_at)
    return TinyBackbone(config.tiny_width)
