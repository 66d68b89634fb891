"""Small building blocks shared by the SOLO-family heads.

``ConvNormAct`` keeps mmdetection's ``ConvModule`` parameter names (``conv``, ``gn``) so the
heads' state dicts read like the released checkpoints' (``bbox_head.ins_convs.0.conv.weight``,
``bbox_head.ins_convs.0.gn.bias``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.deform_conv import DeformConv2d


class ConvNormAct(nn.Module):
    """conv (k x k, same padding) -> GroupNorm (optional) -> ReLU (optional).

    ``dcn`` swaps the conv for a deformable one (``"dcn"`` v1, ``"dcnv2"`` modulated), as the
    SOLOv2 DCN towers do. The conv has no bias unless asked: every use in these heads is
    followed by a norm or, in AggMask*'s feature convs, explicitly bias-free.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        norm_groups: int | None = 32,
        activation: bool = True,
        bias: bool = False,
        dcn: str | None = None,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        if dcn is None:
            self.conv: nn.Module = nn.Conv2d(
                in_channels, out_channels, kernel_size, padding=padding, bias=bias
            )
        else:
            self.conv = DeformConv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=padding,
                bias=bias,
                modulated=dcn == "dcnv2",
            )
        self.gn = nn.GroupNorm(norm_groups, out_channels) if norm_groups else None
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.gn is not None:
            x = self.gn(x)
        return F.relu(x) if self.activation else x


def coord_features(x: Tensor) -> Tensor:
    """(N, 2, H, W) normalised pixel coordinates of ``x``'s grid: x then y, each in [-1, 1]."""
    n, _, h, w = x.shape
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).unsqueeze(0).expand(n, -1, -1, -1)


def with_coords(x: Tensor) -> Tensor:
    """``x`` with its two coordinate channels appended (CoordConv input)."""
    return torch.cat([x, coord_features(x)], dim=1)


def solo_levels(features: list[Tensor]) -> list[Tensor]:
    """The five head inputs from FPN levels P2..P6.

    SOLO reads P2 at half resolution (stride 8) and P6 resized to P5's size (stride 32), so the
    five grids see strides 8, 8, 16, 32, 32.
    """
    p2, p3, p4, p5, p6 = features
    return [
        F.interpolate(p2, scale_factor=0.5, mode="bilinear", align_corners=False),
        p3,
        p4,
        p5,
        F.interpolate(p6, size=p5.shape[-2:], mode="bilinear", align_corners=False),
    ]


def points_nms(heat: Tensor) -> Tensor:
    """Keep a category probability only where it is the maximum of its 2x2 window.

    ``heat`` (N, C, S, S) sigmoid scores; a cell survives when no cell above, left or above-left
    of it (the 2x2 window ending at it) scores higher — SOLO's cheap local-max filter.
    """
    hmax = F.max_pool2d(heat, kernel_size=2, stride=1, padding=1)
    return heat * (hmax[:, :, :-1, :-1] == heat)
