"""Box regression targets: the R-CNN (dx, dy, dw, dh) parametrisation.

``encode`` turns a (source, target) box pair into deltas, ``decode`` applies deltas to source
boxes. Centre offsets are relative to the source size and size changes are logarithmic, each
multiplied by a weight (RPN: 1,1,1,1; Fast R-CNN: 10,10,5,5) to balance the loss terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

# Largest log-scale change decode accepts: a box may grow at most 1000/16 times, which keeps
# exp() finite for wild early-training predictions.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class BoxCoder:
    """Encodes and decodes XYXY boxes as weighted (dx, dy, dw, dh) deltas."""

    def __init__(self, weights: Sequence[float], scale_clamp: float = DEFAULT_SCALE_CLAMP) -> None:
        if len(weights) != 4:
            raise ValueError(f"expected 4 box weights, got {len(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def encode(self, sources: Tensor, targets: Tensor) -> Tensor:
        """Deltas ``(N, 4)`` that turn ``sources`` (N, 4) into ``targets`` (N, 4), both XYXY."""
        src_w = sources[:, 2] - sources[:, 0]
        src_h = sources[:, 3] - sources[:, 1]
        src_x = sources[:, 0] + 0.5 * src_w
        src_y = sources[:, 1] + 0.5 * src_h
        tgt_w = targets[:, 2] - targets[:, 0]
        tgt_h = targets[:, 3] - targets[:, 1]
        tgt_x = targets[:, 0] + 0.5 * tgt_w
        tgt_y = targets[:, 1] + 0.5 * tgt_h
        wx, wy, ww, wh = self.weights
        dx = wx * (tgt_x - src_x) / src_w
        dy = wy * (tgt_y - src_y) / src_h
        dw = ww * torch.log(tgt_w / src_w)
        dh = wh * torch.log(tgt_h / src_h)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def decode(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Apply ``deltas`` (N, 4k), k boxes per row, to ``boxes`` (N, 4); returns (N, 4k) XYXY.

        Computed in float32 even under autocast: half precision cannot hold pixel coordinates
        of a 1024 px image with sub-pixel accuracy.
        """
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = torch.clamp(deltas[:, 2::4] / ww, max=self.scale_clamp)
        dh = torch.clamp(deltas[:, 3::4] / wh, max=self.scale_clamp)
        pred_x = dx * widths[:, None] + ctr_x[:, None]
        pred_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        out = torch.stack(
            (
                pred_x - 0.5 * pred_w,
                pred_y - 0.5 * pred_h,
                pred_x + 0.5 * pred_w,
                pred_y + 0.5 * pred_h,
            ),
            dim=-1,
        )
        return out.reshape(deltas.shape)


def smooth_l1_sum(inputs: Tensor, targets: Tensor, beta: float) -> Tensor:
    """Summed smooth-L1 loss; ``beta`` below 1e-5 is plain L1 (ViTDet uses beta 0)."""
    diff = torch.abs(inputs - targets)
    if beta < 1e-5:
        return diff.sum()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum()
