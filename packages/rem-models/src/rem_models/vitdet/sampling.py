"""Class-balanced sampling of training examples for the RPN and the box head."""

from __future__ import annotations

import torch
from torch import Tensor


def subsample_labels(
    labels: Tensor,
    num_samples: int,
    positive_fraction: float,
    bg_label: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Pick at most ``num_samples`` indices of ``labels`` (N,), a ``positive_fraction`` of them
    foreground.

    Foreground is any label other than -1 (ignore) and ``bg_label``. When there are too few
    positives the rest is filled with negatives. Returns (positive indices, negative indices),
    each in random order. Draws ``randperm(#positives)`` then ``randperm(#negatives)`` from
    ``generator`` (the global CPU generator by default), the same draws detectron2 makes, so
    a seeded run picks the same samples.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    perm_pos = torch.randperm(positive.numel(), generator=generator, device=positive.device)
    perm_neg = torch.randperm(negative.numel(), generator=generator, device=negative.device)
    return positive[perm_pos[:num_pos]], negative[perm_neg[:num_neg]]
