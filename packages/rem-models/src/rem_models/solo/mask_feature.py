"""SOLOv2's unified mask-feature branch: P2..P5 fused into one stride-4 feature map.

Level i (0 = P2) goes through i stages of (3x3 conv, norm, ReLU, x2 bilinear upsampling), P2
through one conv; only P5 gets the two coordinate channels; the four results are summed. In
SOLOv2 a 1x1 conv + GN + ReLU then gives the E-channel feature F that the dynamic kernels
convolve (``mask_feat_head.convs_all_levels`` / ``conv_pred`` in the checkpoints); AggMask*
builds the same pyramid fusion without norms (``bbox_head.feature_convs`` / ``solo_mask``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.layers import ConvNormAct, with_coords

NUM_LEVELS = 4  # P2..P5


class _Upsample2x(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def level_convs(
    in_channels: int, channels: int, *, norm_groups: int | None, dcn: str | None = None
) -> nn.ModuleList:
    """The per-level conv stacks, named ``conv{j}`` / ``upsample{j}`` as in the reference."""
    stacks = nn.ModuleList()
    for level in range(NUM_LEVELS):
        stack = nn.Sequential()
        for j in range(max(level, 1)):
            if j == 0:
                cin = in_channels + 2 if level == NUM_LEVELS - 1 else in_channels
            else:
                cin = channels
            stack.add_module(
                f"conv{j}", ConvNormAct(cin, channels, 3, norm_groups=norm_groups, dcn=dcn)
            )
            if level > 0:
                stack.add_module(f"upsample{j}", _Upsample2x())
        stacks.append(stack)
    return stacks


def fuse_levels(stacks: nn.ModuleList, features: Sequence[Tensor]) -> Tensor:
    """Sum of every level's stack output at P2's resolution; P5 gets coordinates first."""
    total = None
    for level, (stack, x) in enumerate(zip(stacks, features)):
        if level == NUM_LEVELS - 1:
            x = with_coords(x)
        y = stack(x)
        total = y if total is None else total + y
    assert total is not None
    return total


def init_normal(module: nn.Module) -> None:
    """N(0, 0.01) weights for every plain conv (the reference's init of these branches)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MaskFeatureHead(nn.Module):
    """SOLOv2's mask-feature head: (P2, P3, P4, P5) -> (N, out_channels, H/4, W/4)."""

    def __init__(
        self,
        in_channels: int = 256,
        channels: int = 128,
        out_channels: int = 256,
        *,
        norm_groups: int = 32,
        dcn: str | None = None,
    ) -> None:
        super().__init__()
        self.convs_all_levels = level_convs(in_channels, channels, norm_groups=norm_groups, dcn=dcn)
        self.conv_pred = nn.Sequential(
            ConvNormAct(channels, out_channels, 1, norm_groups=norm_groups, dcn=dcn)
        )
        init_normal(self)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.conv_pred(fuse_levels(self.convs_all_levels, features[:NUM_LEVELS]))
