"""AggMask's aggregation of local mask representations (shared by AggMask and AggMask*).

A category-grid cell (i, j) maps to (i, j) * (S_m - 1) / (S_c - 1) on the mask grid. From there
K mask logits are sampled: the cross of 5 around the rounded position (clamped at the border)
when some level has equal category and mask grids, else the 4 corners around it. They are
stacked with a few context channels (all pyramid levels fused at P2) and combined by a small
per-cell network of 3x3 convs whose weights the head predicts for that cell ("dynamic
aggregator"): 21 -> 4 -> 4 -> 1 channels with ReLUs, 945 numbers per cell in the default
setting, sliced in the order w0, b0, w1, b1, w2, b2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CROSS_OFFSETS = ((-1, 0), (0, -1), (0, 0), (0, 1), (1, 0))  # (dy, dx); index 2 is the centre


def neighbour_mode(cls_grids: Sequence[int], mask_grids: Sequence[int], setting: str) -> str:
    """``"cross"`` or ``"corners"``: ``setting``, or for ``"auto"`` the reference's rule (the
    cross as soon as any level has equal grids, chosen once for all levels)."""
    if setting != "auto":
        return setting
    return "cross" if any(c == m for c, m in zip(cls_grids, mask_grids)) else "corners"


def neighbour_cells(cls_grid: int, mask_grid: int, mode: str, device: torch.device) -> Tensor:
    """(S_c^2, K, 2) int64 (row, col) mask-grid cells sampled for every category cell."""
    ar = torch.arange(cls_grid, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(ar, ar, indexing="ij")
    # float32 arithmetic, rounding half to even: exactly the reference's index computation.
    where = torch.stack([rows, cols], dim=2).reshape(-1, 2) * ((mask_grid - 1) / (cls_grid - 1))
    if mode == "cross":
        offsets = torch.tensor(CROSS_OFFSETS, dtype=torch.float32, device=device)
        cells = where.round()[:, None, :] + offsets[None]
        return cells.clamp(0, mask_grid - 1).long()
    if mode != "corners":
        raise ValueError(f"unknown neighbour sampling {mode!r}")
    lo, hi = where.floor(), where.ceil()
    return torch.stack(
        [
            torch.stack([lo[:, 0], hi[:, 1]], dim=1),
            hi,
            torch.stack([hi[:, 0], lo[:, 1]], dim=1),
            lo,
        ],
        dim=1,
    ).long()


def weight_layout(
    inputs: int, layers: int, kernel: int, hidden: int
) -> list[tuple[tuple[int, int, int, int], int]]:
    """Per aggregator layer: (out, in, k, k) weight shape and bias length."""
    out = []
    for i in range(layers):
        cin = inputs if i == 0 else hidden
        cout = 1 if i == layers - 1 else hidden
        out.append(((cout, cin, kernel, kernel), cout))
    return out


def weight_count(inputs: int, layers: int, kernel: int, hidden: int) -> int:
    """Numbers predicted per cell (945 for 21 inputs, 3 layers of 3x3, 4 hidden channels)."""
    return sum(
        shape[0] * shape[1] * shape[2] * shape[3] + bias
        for shape, bias in weight_layout(inputs, layers, kernel, hidden)
    )


def aggregate(
    samples: Tensor, weights: Tensor, layout: Sequence[tuple[tuple[int, int, int, int], int]]
) -> Tensor:
    """Run every cell's own small conv net: (P, C_in, H, W) inputs, (P, W) weights -> (P, H, W).

    Each layer is a per-cell convolution (zero padding, same size); ReLU after all but the
    last. See :func:`per_cell_conv` for how they run.
    """
    p = samples.shape[0]
    x = samples
    at = 0
    for i, (shape, bias_len) in enumerate(layout):
        n_w = shape[0] * shape[1] * shape[2] * shape[3]
        weight = weights[:, at : at + n_w].reshape(p, *shape)
        bias = weights[:, at + n_w : at + n_w + bias_len]
        at += n_w + bias_len
        x = per_cell_conv(x, weight.to(x.dtype), bias.to(x.dtype))
        if i < len(layout) - 1:
            x = F.relu(x)
    return x[:, 0]


def per_cell_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Convolve each of P inputs with its own kernel (zero padding, same size).

    ``x`` (P, C, H, W), ``weight`` (P, O, C, k, k), ``bias`` (P, O) -> (P, O, H, W); the P
    convolutions run as one grouped convolution.
    """
    p, c, h, w = x.shape
    o, k = weight.shape[1], weight.shape[-1]
    out = F.conv2d(
        x.reshape(1, p * c, h, w),
        weight.reshape(p * o, c, k, k),
        bias.reshape(-1),
        padding=k // 2,
        groups=p,
    )
    return out.reshape(p, o, h, w)


def context_fusion(in_channels: int, levels: int, channels: int, norm_groups: int) -> nn.Sequential:
    """1x1 conv (all levels) -> GN -> ReLU -> 1x1 conv to ``channels`` -> ReLU (keys 0, 1, 3)."""
    return nn.Sequential(
        nn.Conv2d(in_channels * levels, in_channels, 1),
        nn.GroupNorm(norm_groups, in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, channels, 1),
        nn.ReLU(),
    )


def fuse_context(fusion: nn.Sequential, features: Sequence[Tensor]) -> Tensor:
    """Every level resized to P2 (bilinear, corners aligned), concatenated, fused."""
    size = features[0].shape[-2:]
    stacked = [
        f
        if f.shape[-2:] == size
        else F.interpolate(f, size=size, mode="bilinear", align_corners=True)
        for f in features
    ]
    return fusion(torch.cat(stacked, dim=1))


def with_context(sampled: Tensor, context: Tensor | None) -> Tensor:
    """Aggregator inputs: (P, K, H, W) sampled mask logits + (C_ctx, H, W) context, or alone."""
    if context is None:
        return sampled
    p = sampled.shape[0]
    return torch.cat([sampled, context[None].expand(p, -1, -1, -1).to(sampled.dtype)], dim=1)


def resize_context(context: Tensor, size: tuple[int, int]) -> Tensor:
    """Context (N, C, h, w) at a level's mask resolution (bilinear, corners aligned)."""
    if tuple(context.shape[-2:]) == tuple(size):
        return context
    return F.interpolate(context, size=size, mode="bilinear", align_corners=True)
