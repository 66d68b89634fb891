"""Matrix NMS (SOLOv2): soft suppression of duplicate masks in one parallel step.

For masks sorted by score, with IoU_ij between masks i and j and only pairs i < j of the same
class counted: comp_i = the largest IoU of mask i with any higher-scored mask; the score of j is
multiplied by min over i of f(IoU_ij) / f(comp_i), where f(x) = exp(-sigma x^2) (gaussian) or
1 - x (linear). Pairs that do not count contribute f(0) / f(comp_i) >= 1, and the top mask has
comp = 0, so the multiplier never exceeds 1. Everything is a few dense matrix operations, on
the GPU or the CPU alike.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def mask_iou_matrix(masks: Tensor, areas: Tensor | None = None) -> Tensor:
    """(n, n) IoU of (n, H, W) binary masks (one matrix product for the intersections)."""
    n = masks.shape[0]
    flat = masks.reshape(n, -1).float()
    if areas is None:
        areas = flat.sum(1)
    inter = flat @ flat.T
    union = areas[:, None] + areas[None, :] - inter
    return inter / union.clamp(min=1e-6)


def matrix_nms(
    masks: Tensor,
    labels: Tensor,
    scores: Tensor,
    *,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 2.0,
    areas: Tensor | None = None,
) -> Tensor:
    """Decayed scores (n,) for (n, H, W) binary ``masks`` sorted by descending ``scores``.

    ``labels`` (n,) class of each mask; ``areas`` (n,) their pixel counts when known.
    The linear kernel clamps 1 - comp at 1e-6 so two identical masks give a large, finite
    ratio instead of the reference's NaN.
    """
    n = labels.numel()
    if n == 0:
        return scores.clone()
    iou = mask_iou_matrix(masks, areas).triu(diagonal=1)
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    decay_iou = iou * same
    comp = decay_iou.max(dim=0).values  # comp_i: best IoU of i with a higher-scored same-class
    if kernel == "gaussian":
        # exp(-s d^2) / exp(-s c^2) = exp(-s (d^2 - c^2)), rowwise c = comp_i.
        ratio = torch.exp(-sigma * (decay_iou**2 - comp[:, None] ** 2))
    elif kernel == "linear":
        ratio = (1.0 - decay_iou) / (1.0 - comp[:, None]).clamp(min=1e-6)
    else:
        raise ValueError(f"unknown Matrix NMS kernel {kernel!r}")
    return scores * ratio.min(dim=0).values
