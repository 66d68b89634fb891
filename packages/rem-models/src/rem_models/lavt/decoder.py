"""LAVT's segmentation decoder: top-down fusion of the four stage outputs into 2 logits.

At each step the coarser map is upsampled (bilinear, ``align_corners=True``, only when it is
smaller) to the next finer one, concatenated with it and passed through two 3x3 conv + BN +
ReLU layers; a 1x1 conv gives background / object logits at stride 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upsample_to(x: Tensor, ref: Tensor) -> Tensor:
    """Bilinear (align_corners=True) resize of ``x`` to ``ref``'s size if ``x`` is smaller."""
    if x.shape[-2] < ref.shape[-2] or x.shape[-1] < ref.shape[-1]:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)
    return x


class FuseBlock(nn.Module):
    """(3x3 conv, BN, ReLU) x 2 over the concatenation of a top-down map and a skip map."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)

    def forward(self, top: Tensor, skip: Tensor) -> Tensor:
        x = torch.cat([upsample_to(top, skip), skip], dim=1)
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class SimpleDecoder(nn.Module):
    """Stage maps (strides 4, 8, 16, 32; widths ``dims``) -> (B, 2, H/4, W/4) logits."""

    def __init__(self, dims: Sequence[int], hidden: int):
        super().__init__()
        c1, c2, c3, c4 = dims
        self.fuse4 = FuseBlock(c4 + c3, hidden)
        self.fuse3 = FuseBlock(hidden + c2, hidden)
        self.fuse2 = FuseBlock(hidden + c1, hidden)
        self.predictor = nn.Conv2d(hidden, 2, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x1, x2, x3, x4 = features
        x = self.fuse4(x4, x3)
        x = self.fuse3(x, x2)
        x = self.fuse2(x, x1)
        return self.predictor(x)
