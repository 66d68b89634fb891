"""The Mask R-CNN mask branch: a small FCN predicting a 28 x 28 mask per ROI and class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from rem_models.vitdet.box_head import msra_fill
from rem_models.vitdet.conv_norm import ConvNorm


class MaskHead(nn.Module):
    """``len(conv_dims) - 1`` x (3x3 conv, LN, ReLU), a 2x2 stride-2 transposed conv with
    ``conv_dims[-1]`` channels + ReLU, and a 1x1 predictor with one channel per class.

    Input: pooled features (R, in_channels, S, S). Output: mask logits (R, K, 2S, 2S).
    (detectron2 counts the transposed conv in ``conv_dims``; ViTDet uses [256] * 5.)
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_dims: Sequence[int] = (256, 256, 256, 256, 256),
        norm: bool = True,
    ) -> None:
        super().__init__()
        if len(conv_dims) < 1:
            raise ValueError("the mask head needs at least the transposed conv width")
        convs = []
        channels = in_channels
        for dim in conv_dims[:-1]:
            convs.append(ConvNorm(channels, dim, 3, norm=norm, relu=True))
            channels = dim
        self.convs = nn.ModuleList(convs)
        self.deconv = nn.ConvTranspose2d(channels, conv_dims[-1], kernel_size=2, stride=2)
        self.predictor = nn.Conv2d(conv_dims[-1], num_classes, kernel_size=1)
        for conv in self.convs:
            msra_fill(conv.conv)
        msra_fill(self.deconv)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.predictor(torch.relu(self.deconv(x)))


def select_class_masks(mask_logits: Tensor, classes: Tensor) -> Tensor:
    """The (R, M, M) logits of each ROI's own class from (R, K, M, M); class-agnostic heads
    (K = 1) return their single channel."""
    if mask_logits.shape[1] == 1:
        return mask_logits[:, 0]
    rows = torch.arange(mask_logits.shape[0], device=mask_logits.device)
    return mask_logits[rows, classes]


def mask_targets(gt_masks: Tensor, gt_index: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Ground-truth masks cropped to ``boxes`` and resampled to (R, size, size), as bools.

    ``gt_masks`` (G, H, W) of one image, ``gt_index`` (R,) which ground truth each box was
    matched to, ``boxes`` (R, 4) XYXY in the image's pixels. Uses aligned RoIAlign on the
    binary masks then a 0.5 threshold, as detectron2's ``BitMasks.crop_and_resize``.
    """
    rois = torch.cat([gt_index.to(boxes.dtype)[:, None], boxes], dim=1)
    masks = gt_masks.to(device=boxes.device, dtype=torch.float32)[:, None]
    return roi_align(masks, rois, (size, size), 1.0, 0, aligned=True)[:, 0] >= 0.5


def mask_rcnn_loss(
    mask_logits: Tensor,
    gt_classes: Tensor,
    gt_masks: Sequence[Tensor],
    gt_index: Sequence[Tensor],
    boxes: Sequence[Tensor],
) -> tuple[Tensor, dict[str, float]]:
    """Mean per-pixel BCE between each foreground ROI's own-class logits and its target.

    ``mask_logits`` (R, K, M, M) for the foreground ROIs of all images, ``gt_classes`` (R,);
    per image: ``gt_masks`` (G_i, H, W), ``gt_index`` (R_i,) and ``boxes`` (R_i, 4).
    Returns the loss (a zero that keeps the graph when there is no foreground ROI) and the
    pixel accuracy figures detectron2 logs.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0, {}
    size = mask_logits.shape[-1]
    mask_logits = mask_logits.float()
    targets = torch.cat(
        [mask_targets(m, i, b, size) for m, i, b in zip(gt_masks, gt_index, boxes) if len(b)]
    )
    logits = select_class_masks(mask_logits, gt_classes)
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(torch.float32), reduction="mean")
    with torch.no_grad():
        pred = logits > 0.0
        wrong = (pred != targets).sum().item()
        stats = {
            "accuracy": 1 - wrong / max(pred.numel(), 1.0),
            "false_positive": (pred & ~targets).sum().item() / max((~targets).sum().item(), 1.0),
            "false_negative": (~pred & targets).sum().item() / max(targets.sum().item(), 1.0),
        }
    return loss, stats
