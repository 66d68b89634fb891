"""The CIM network: backbone -> MaskFuse head -> MIL branch + refinement branches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rem_models.cim.heads import MaskFuseHead, MilHead, RefinementHeads

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class CimOutputs:
    """Per-proposal outputs of one image: ``mil`` (N, C) cls x det; ``refine_cls`` K x (N, C+1)
    softmax (column 0 = background); ``refine_iou`` K x (N, C) sigmoid integrity."""

    mil: torch.Tensor
    refine_cls: list[torch.Tensor]
    refine_iou: list[torch.Tensor]

    def scores(self) -> torch.Tensor:
        """(N, C) inference score: mean over branches of class probability x integrity."""
        per_branch = [c[:, 1:] * i for c, i in zip(self.refine_cls, self.refine_iou, strict=True)]
        return torch.stack(per_branch).mean(dim=0)


class CimModel(nn.Module):
    """Complete Instances Mining (weakly supervised instance segmentation from mask proposals).

    Input: ``image`` (3, H, W) float RGB 0-255; ``boxes`` (N, 4) XYXY proposal boxes in that
    image's pixels; ``mask_crops`` (N, s, s) the proposals' masks cropped to their boxes and
    resized to the RoI grid (see :func:`rem_models.cim.data.mask_crops`). Output:
    :class:`CimOutputs`; losses and pseudo-labels are computed outside
    (:func:`rem_models.cim.losses.cim_losses`), predictions by :mod:`rem_models.cim.inference`.
    Each output mask is a proposal's mask: the model only scores proposals.
    """

    def __init__(
        self, backbone: nn.Module, head: MaskFuseHead, mil: MilHead, refine: RefinementHeads
    ) -> None:
        super().__init__()
        self.backbone, self.head, self.mil, self.refine = backbone, head, mil, refine
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1), False)

    def forward(
        self, image: torch.Tensor, boxes: torch.Tensor, mask_crops: torch.Tensor
    ) -> CimOutputs:
        x = ((image - self.pixel_mean) / self.pixel_std)[None]
        features = self.backbone(x)
        pooled = self.head(features, boxes.to(features.dtype), mask_crops)
        cls, iou = self.refine(pooled)
        return CimOutputs(self.mil(pooled), cls, iou)
