"""CIM's heads: the MaskFuse box head, the WSDDN-style MIL branch and the refinement branches."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align


class MaskFuseHead(nn.Module):
    """Proposal features that see the proposal's shape, not only its box.

    RoIAlign (unaligned, ``roi_size``²) of the box, multiplied by the proposal's mask crop
    resized to the same grid, concatenated with the plain box feature, then 3x3 conv -> C
    channels -> fc ``hidden`` -> fc ``hidden``.
    """

    def __init__(self, channels: int, stride: int, hidden: int, roi_size: int = 7) -> None:
        super().__init__()
        self.stride, self.roi_size = stride, roi_size
        self.mask_branch = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.seg_fc = nn.Sequential(
            nn.Linear(channels * roi_size * roi_size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )

    def forward(
        self, features: torch.Tensor, boxes: torch.Tensor, mask_crops: torch.Tensor
    ) -> torch.Tensor:
        """features (1, C, h, w); boxes (N, 4) XYXY input pixels; mask_crops (N, s, s) in [0, 1]
        -> (N, hidden)."""
        rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1)
        box_feat = roi_align(
            features,
            rois,
            self.roi_size,
            spatial_scale=1.0 / self.stride,
            sampling_ratio=2,
            aligned=False,
        )
        masked = box_feat * mask_crops[:, None].to(box_feat.dtype)
        fused = self.mask_branch(torch.cat([box_feat, masked], dim=1))
        return self.seg_fc(fused.flatten(1))


class MilHead(nn.Module):
    """WSDDN: class softmax (per proposal) times detection softmax (over proposals)."""

    def __init__(self, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(hidden, num_classes)
        self.detector = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, C) proposal scores whose sum over N is the image score."""
        return self.classifier(x).softmax(dim=1) * self.detector(x).softmax(dim=0)


class RefinementHeads(nn.Module):
    """K refinement branches: ``refine_cls`` (C+1 softmax, column 0 = background) and
    ``refine_iou`` (class-specific sigmoid integrity)."""

    def __init__(self, hidden: int, num_classes: int, num_branches: int) -> None:
        super().__init__()
        self.refine_cls = nn.ModuleList(
            nn.Linear(hidden, num_classes + 1) for _ in range(num_branches)
        )
        self.refine_iou = nn.ModuleList(nn.Linear(hidden, num_classes) for _ in range(num_branches))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(N, hidden) -> ([K x (N, C+1) probabilities], [K x (N, C) integrities])."""
        cls = [head(x).softmax(dim=1) for head in self.refine_cls]
        iou = [head(x).sigmoid() for head in self.refine_iou]
        return cls, iou
