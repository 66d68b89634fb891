"""SeqTR's loss: label-smoothed cross-entropy over coordinate tokens with per-token weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_weights(
    targets: torch.Tensor, task: str, end_token: int, x1_weight: float, end_weight: float
) -> torch.Tensor:
    """(B, T) weights: boxes weigh the x1 token by ``x1_weight``; contours weigh END tokens
    (padding and the closing END) by ``end_weight`` (SeqTR: 1/10)."""
    weights = torch.ones(targets.shape, dtype=torch.float32, device=targets.device)
    if task == "box":
        weights[:, 0] = x1_weight
    else:
        weights[targets == end_token] = end_weight
    return weights


def label_smoothed_ce(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, smoothing: float = 0.1
) -> torch.Tensor:
    """Sum of weighted per-token losses divided by B*T (SeqTR's ``avg_factor``).

    The smoothed target puts 1 - smoothing on the true token and smoothing / V on every other
    token (SeqTR's one-hot overwrite, so the true token does not get the extra share).
    """
    b, t, v = logits.shape
    log_p = F.log_softmax(logits.float().reshape(-1, v), dim=-1)
    target = torch.full_like(log_p, smoothing / v)
    target.scatter_(1, targets.reshape(-1, 1), 1.0 - smoothing)
    per_token = -(log_p * target).sum(dim=1)
    return (per_token * weights.reshape(-1)).sum() / (b * t)
