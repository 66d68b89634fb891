"""Feature pyramid network (Lin et al., 2017) as configured by SOLO: P2..P5 plus a pooled P6.

Parameter names follow mmdetection 1.x's ``FPN`` (``lateral_convs.i.conv``,
``fpn_convs.i.conv``), the ``neck.`` part of the released checkpoints. Convs have biases and
no normalisation; the top-down path adds nearest-upsampled coarser laterals; P6 is P5
max-pooled with kernel 1 and stride 2 (``add_extra_convs=False``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class _Conv(nn.Module):
    """A biased conv under the name ``conv`` (mmdet's ConvModule without norm/activation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FPN(nn.Module):
    """C2..C5 (strides 4..32) -> [P2, P3, P4, P5, P6], each ``out_channels`` wide."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(_Conv(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(_Conv(out_channels, out_channels, 3) for _ in in_channels)
        self.out_channels = out_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the reference's xavier-uniform init
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs
