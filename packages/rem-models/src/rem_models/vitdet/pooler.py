"""Multi-level RoIAlign: each box is pooled from the pyramid level matching its size."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from rem_models.vitdet.boxes import box_area


def assign_box_levels(
    boxes: Tensor,
    min_level: int,
    max_level: int,
    canonical_box_size: float = 224.0,
    canonical_level: int = 4,
) -> Tensor:
    """FPN level of each box (R, 4) XYXY, as an offset from ``min_level`` (int64, (R,)).

    ``level = floor(canonical_level + log2(sqrt(area) / canonical_box_size + 1e-8))``,
    clamped to [min_level, max_level]: a 224 px box goes to p4, 112 px to p3.
    """
    sizes = torch.sqrt(box_area(boxes))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size + 1e-8))
    levels = torch.clamp(levels, min=min_level, max=max_level)
    return levels.to(torch.int64) - min_level


def boxes_to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """Per-image (R_i, 4) boxes -> (sum R_i, 5) rows ``(image index, x1, y1, x2, y2)``."""
    all_boxes = torch.cat(list(boxes), dim=0)
    counts = torch.tensor([len(b) for b in boxes], device=all_boxes.device)
    index = torch.repeat_interleave(
        torch.arange(len(boxes), dtype=all_boxes.dtype, device=all_boxes.device), counts
    )
    return torch.cat([index[:, None], all_boxes], dim=1)


class MultiLevelRoIAlign(nn.Module):
    """RoIAlign (``aligned=True``, half-pixel corrected) from the level each box belongs to.

    ``scales`` are the feature maps' 1 / stride, fine to coarse (p2-p5: 1/4 .. 1/32).
    ``sampling_ratio`` 0 samples ceil(bin size) points per bin (detectron2's ROIAlignV2).
    Input: feature maps (N, C, H_l, W_l) and per-image boxes (R_i, 4) XYXY in input pixels.
    Output: (sum R_i, C, S, S), rows in the order of the concatenated boxes.
    """

    def __init__(
        self,
        output_size: int,
        scales: Sequence[float],
        sampling_ratio: int = 0,
        canonical_box_size: float = 224.0,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        levels = [-math.log2(s) for s in scales]
        if any(abs(lvl - round(lvl)) > 1e-6 for lvl in levels):
            raise ValueError(f"pooler scales must be powers of 1/2, got {list(scales)}")
        self.output_size = output_size
        self.scales = [float(s) for s in scales]
        self.sampling_ratio = sampling_ratio
        self.min_level = round(levels[0])
        self.max_level = round(levels[-1])
        if self.max_level - self.min_level + 1 != len(scales):
            raise ValueError(f"pooler scales must be consecutive pyramid levels, got {scales}")
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def forward(self, features: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
        if len(features) != len(self.scales):
            raise ValueError(f"expected {len(self.scales)} feature maps, got {len(features)}")
        rois = boxes_to_rois(boxes)
        size = self.output_size
        out = features[0].new_zeros((rois.shape[0], features[0].shape[1], size, size))
        if rois.shape[0] == 0:
            return out
        levels = assign_box_levels(
            rois[:, 1:],
            self.min_level,
            self.max_level,
            self.canonical_box_size,
            self.canonical_level,
        )
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            inds = torch.nonzero(levels == level, as_tuple=True)[0]
            # Pool half-precision maps in float32: box corners of a 1024 px image need more
            # than fp16's 11 significant bits.
            pooled = roi_align(
                feature if feature.dtype == rois.dtype else feature.to(rois.dtype),
                rois[inds],
                (size, size),
                spatial_scale=scale,
                sampling_ratio=self.sampling_ratio,
                aligned=True,
            )
            out.index_put_((inds,), pooled.to(out.dtype))
        return out
