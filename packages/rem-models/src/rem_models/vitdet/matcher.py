"""Assigning predictions (anchors, proposals) to ground-truth boxes by IoU."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor


class Matcher:
    """Match each prediction to its best ground truth and label it by IoU band.

    ``thresholds`` split [0, 1] into bands and ``labels`` names each band, e.g. the RPN uses
    thresholds (0.3, 0.7) with labels (NEGATIVE, IGNORE, POSITIVE): IoU < 0.3 is background,
    0.3 <= IoU < 0.7 is ignored, IoU >= 0.7 is foreground. With
    ``allow_low_quality_matches`` every ground truth also claims the predictions that overlap it
    most, even below the top threshold, so no object is left without a positive.
    """

    NEGATIVE = 0
    IGNORE = -1
    POSITIVE = 1

    def __init__(
        self,
        thresholds: Sequence[float],
        labels: Sequence[int],
        allow_low_quality_matches: bool = False,
    ) -> None:
        thresholds = [float(t) for t in thresholds]
        if any(a > b for a, b in itertools.pairwise(thresholds)):
            raise ValueError(f"matcher thresholds must be sorted, got {thresholds}")
        if len(labels) != len(thresholds) + 1:
            raise ValueError("matcher needs one label per IoU band (len(thresholds) + 1)")
        if any(label not in (self.NEGATIVE, self.IGNORE, self.POSITIVE) for label in labels):
            raise ValueError(f"matcher labels must be -1, 0 or 1, got {list(labels)}")
        self.thresholds = [-math.inf, *thresholds, math.inf]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Match from ``quality`` (G, N): IoU of G ground truths with N predictions.

        Returns ``matches`` (N,) int64, the best ground truth per prediction, and ``labels``
        (N,) int8 in {-1, 0, 1}. Without ground truth every prediction gets the first label.
        """
        if quality.numel() == 0:
            n = quality.shape[1]
            matches = quality.new_zeros((n,), dtype=torch.int64)
            labels = quality.new_full((n,), self.labels[0], dtype=torch.int8)
            return matches, labels
        best, matches = quality.max(dim=0)
        labels = matches.new_full(matches.shape, 1, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            labels[(best >= low) & (best < high)] = label
        if self.allow_low_quality_matches:
            # Exact equality on purpose: ties for a ground truth's best IoU all become positive.
            best_per_gt = quality.max(dim=1).values
            _, preds = torch.nonzero(quality == best_per_gt[:, None], as_tuple=True)
            labels[preds] = 1
        return matches, labels
