"""Box geometry shared by the RPN, the ROI heads and post-processing.

Boxes are ``(N, 4)`` tensors of XYXY corners in pixels. The formulas follow detectron2's
``Boxes`` operation for operation, because the matchers compare IoUs for exact equality
(low-quality matches) and a different rounding would pick different anchors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """``(N,)`` areas of XYXY boxes (negative widths are not clamped, as in detectron2)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``(N, M)`` IoU between XYXY ``boxes1`` (N, 4) and ``boxes2`` (M, 4); 0 where disjoint."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    wh = torch.min(boxes1[:, None, 2:], boxes2[:, 2:]) - torch.max(
        boxes1[:, None, :2], boxes2[:, :2]
    )
    inter = wh.clamp(min=0).prod(dim=2)
    # Dividing only where boxes overlap keeps degenerate (zero-area) pairs at 0 instead of NaN.
    return torch.where(inter > 0, inter / (area1[:, None] + area2 - inter), torch.zeros_like(inter))


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """``boxes`` (N, 4) XYXY clamped into an image of ``size`` (H, W); returns a new tensor."""
    height, width = size
    x1 = boxes[:, 0].clamp(min=0, max=width)
    y1 = boxes[:, 1].clamp(min=0, max=height)
    x2 = boxes[:, 2].clamp(min=0, max=width)
    y2 = boxes[:, 3].clamp(min=0, max=height)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def nonempty(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    """``(N,)`` bool: boxes whose width and height both exceed ``threshold`` pixels."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return (widths > threshold) & (heights > threshold)
