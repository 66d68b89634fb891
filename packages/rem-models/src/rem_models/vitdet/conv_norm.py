"""Convolution + channel LayerNorm, the unit of ViTDet's pyramid and both ROI heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map, each pixel on its own.

    Written out (mean, biased variance, affine) rather than via a permute and nn.LayerNorm,
    following detectron2's formula so activations match it to the last bits.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNorm(nn.Module):
    """``conv`` (k x k, 'same' padding, no bias) -> ``norm`` (LayerNorm2d) -> optional ReLU.

    With ``norm=False`` the convolution has a bias instead, as in detectron2 when no norm
    is configured.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        norm: bool = True,
        relu: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm
        )
        self.norm = LayerNorm2d(out_channels, eps) if norm else nn.Identity()
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(self.conv(x))
        return torch.relu(x) if self.relu else x
