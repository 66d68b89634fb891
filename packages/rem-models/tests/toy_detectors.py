"""Small models that follow the rem detector contract, for engine tests.

``model(images, targets)``: images are (3, H, W) float 0-255 RGB; train mode returns a dict of
losses, eval mode a list of ``{boxes XYXY, scores, labels 0-based, masks (N, H, W)}``.

* :class:`TinyMaskRCNN`: torchvision's Mask R-CNN around a three-conv backbone (real RPN / ROI
  sampling, so it draws from torch's RNG like the real models).
* :class:`MeanColourRegressor`: a deterministic per-image loss (a mean over images), for exact
  gradient comparisons across process counts.
* :class:`FixedPredictor`: returns given detections, to check result conversion exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from rem_models import ModelConfig


class TinyMaskRCNNConfig(ModelConfig):
    num_classes: int = 3
    image_size: int = 96
    width: int = 24
    score_threshold: float = 0.0


class TinyMaskRCNN(nn.Module):
    """torchvision Mask R-CNN (stride-4 single-level backbone), wrapped to the rem contract."""

    def __init__(self, config: TinyMaskRCNNConfig) -> None:
        super().__init__()
        w = config.width
        backbone = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(),
        )
        backbone.out_channels = w
        k = config.num_classes + 1  # torchvision puts background at index 0
        self.net = MaskRCNN(
            backbone,
            num_classes=None,
            min_size=config.image_size,
            max_size=config.image_size,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.25, 0.25, 0.25],
            rpn_anchor_generator=AnchorGenerator(((8, 16, 32, 64),), ((0.5, 1.0, 2.0),)),
            rpn_pre_nms_top_n_train=300,
            rpn_post_nms_top_n_train=150,
            rpn_pre_nms_top_n_test=150,
            rpn_post_nms_top_n_test=60,
            box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
            box_head=TwoMLPHead(w * 49, 128),
            box_predictor=FastRCNNPredictor(128, k),
            box_batch_size_per_image=64,
            box_score_thresh=config.score_threshold,
            box_detections_per_img=30,
            mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
            mask_head=MaskRCNNHeads(w, [w, w], 1),
            mask_predictor=MaskRCNNPredictor(w, w, k),
        )

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        images = [im / 255.0 for im in images]
        if self.training:
            shifted = [{**t, "labels": t["labels"] + 1} for t in targets]
            return self.net(images, shifted)
        outputs = self.net(images)
        return [{**o, "labels": o["labels"] - 1} for o in outputs]


class RegressorConfig(ModelConfig):
    num_classes: int = 3


class MeanColourRegressor(nn.Module):
    """Predicts each image's instance count and mean colour; loss = mean over images.

    Different image sizes are fine (global pooling). No randomness, so one process on a global
    batch and two processes on its halves must produce the same gradients.
    """

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        feats = torch.stack([self.conv(im[None] / 255.0).relu().mean((2, 3))[0] for im in images])
        pred = self.head(self.norm(feats))
        if not self.training:
            return [
                {
                    "boxes": torch.zeros(0, 4),
                    "scores": torch.zeros(0),
                    "labels": torch.zeros(0, dtype=torch.int64),
                }
                for _ in images
            ]
        truth = torch.stack(
            [
                torch.cat([im.mean((1, 2)) / 255.0, torch.tensor([float(len(t["labels"]))])])
                for im, t in zip(images, targets)
            ]
        )
        return {
            "loss_colour": ((pred[:, :3] - truth[:, :3]) ** 2).mean(),
            "loss_count": (pred[:, 3] - truth[:, 3]).abs().mean() * 0.1,
        }


class FixedPredictor(nn.Module):
    """Returns the same detections for every image; one dummy parameter to have a state."""

    def __init__(self, detections: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.detections = detections

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        return [dict(self.detections) for _ in images]
