"""Deformable convolution with its offset branch, laid out like mmdetection 1.x's DCN layers.

The SOLOv2 DCN models use mmdet's ``DCN`` (v1: offsets only) and ``DCNv2`` (modulated: offsets
and a sigmoid mask) in place of 3x3 convolutions. Their state-dict layout is the convolution's
own ``weight`` (and ``bias``) plus the offset branch, ``conv_offset`` for v1 (2 * k * k
channels) and ``conv_offset_mask`` for v2 (3 * k * k channels: y/x offsets, then mask logits).
The sampling itself is :func:`torchvision.ops.deform_conv2d`, which uses the same offset order
(per kernel tap, the y offset then the x offset).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d


class DeformConv2d(nn.Module):
    """A k x k deformable convolution whose offsets (and, modulated, mask) come from a conv.

    ``modulated=False`` is DCN v1 (``conv_offset``), ``True`` DCN v2 (``conv_offset_mask``).
    The offset branch starts at zero, so a fresh layer computes a plain convolution.
    Input (N, C_in, H, W) -> output (N, C_out, H', W') with the usual conv arithmetic.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        modulated: bool = True,
    ) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.modulated = modulated
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        taps = kernel_size * kernel_size
        offset = nn.Conv2d(
            in_channels,
            (3 if modulated else 2) * taps,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        # The attribute name is the checkpoint key of each DCN version.
        if modulated:
            self.conv_offset_mask = offset
        else:
            self.conv_offset = offset
        self.reset_parameters()

    @property
    def offset_conv(self) -> nn.Conv2d:
        return self.conv_offset_mask if self.modulated else self.conv_offset

    def reset_parameters(self) -> None:
        fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        raw = self.offset_conv(x)
        mask = None
        if self.modulated:
            taps = raw.shape[1] // 3
            offset, mask = raw[:, : 2 * taps], raw[:, 2 * taps :].sigmoid()
        else:
            offset = raw
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )
