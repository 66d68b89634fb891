"""SOLO's two losses: sigmoid focal loss on the category grids, Dice loss on positive masks.

Both are robust to batches without a single positive cell, where the reference crashes
(``torch.cat`` of an empty list): the Dice term is then a zero that still depends on the mask
predictions, so every parameter keeps a gradient (DDP needs that) and training goes on.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    num_positives: int | Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Tensor:
    """Sum of the sigmoid focal loss over all cells and classes / (``num_positives`` + 1).

    ``logits`` (M, C); ``labels`` (M,) int64 with ``C`` meaning background (no class on).
    """
    num_classes = logits.shape[1]
    targets = torch.zeros_like(logits)
    fg = labels < num_classes
    targets[fg.nonzero().flatten(), labels[fg]] = 1.0
    loss = sigmoid_focal_loss(logits.float(), targets.float(), alpha=alpha, gamma=gamma)
    return loss.sum() / (num_positives + 1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-mask Dice loss 1 - 2 sum(p q) / (sum(p^2) + sum(q^2) + 0.002), p = sigmoid(logits).

    ``logits`` (P, H, W) and ``targets`` (P, H, W) 0/1 -> (P,). The 0.001 added to each sum
    is the reference's smoothing.
    """
    p = logits.float().sigmoid().flatten(1)
    q = targets.float().flatten(1)
    inter = (p * q).sum(1)
    return 1.0 - 2.0 * inter / ((p * p).sum(1) + 0.001 + (q * q).sum(1) + 0.001)


def mean_dice(logits: list[Tensor], targets: list[Tensor], anchor: Tensor, weight: float) -> Tensor:
    """``weight`` x the mean Dice loss over all positive masks of all levels.

    ``logits`` / ``targets``: per level (P_l, H_l, W_l). ``anchor`` (the sum of every mask-side
    output) enters with weight 0, so backward reaches every mask parameter even on levels or
    batches without a positive (DDP requires it); without any positive the loss is 0.
    """
    zero = anchor.float().sum() * 0.0
    losses = [dice_loss(x, t) for x, t in zip(logits, targets) if x.shape[0] > 0]
    if not losses:
        return zero + 0.0  # + 0.0 turns a -0.0 into 0.0
    return torch.cat(losses).mean() * weight + zero
