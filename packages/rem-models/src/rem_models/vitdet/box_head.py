"""The Fast R-CNN box branch: a conv+fc head on pooled features, class scores, box deltas.

Class scores have ``num_classes + 1`` columns with background LAST (detectron2's layout);
box deltas are class-specific, ``num_classes * 4`` columns, none for background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.vitdet.box_coder import BoxCoder, smooth_l1_sum
from rem_models.vitdet.conv_norm import ConvNorm


def msra_fill(module: nn.Module) -> None:
    """He-normal weights for ReLU layers (fan-out), zero bias: detectron2's head init."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class BoxHead(nn.Module):
    """``len(conv_dims)`` x (3x3 conv, LN, ReLU) then ``len(fc_dims)`` x (fc, ReLU).

    Input: pooled features (R, in_channels, S, S). Output: (R, fc_dims[-1]) (or the flattened
    conv output when there are no fc layers). ViTDet uses 4 convs of 256 and one fc of 1024.
    """

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        conv_dims: Sequence[int] = (256, 256, 256, 256),
        fc_dims: Sequence[int] = (1024,),
        norm: bool = True,
    ) -> None:
        super().__init__()
        convs = []
        channels = in_channels
        for dim in conv_dims:
            convs.append(ConvNorm(channels, dim, 3, norm=norm, relu=True))
            channels = dim
        self.convs = nn.ModuleList(convs)
        fcs = []
        width = channels * resolution * resolution
        for dim in fc_dims:
            fcs.append(nn.Linear(width, dim))
            width = dim
        self.fcs = nn.ModuleList(fcs)
        self.out_features = width
        for conv in self.convs:
            msra_fill(conv.conv)
        for fc in self.fcs:
            nn.init.kaiming_uniform_(fc.weight, a=1)  # Caffe2's "xavier" fill
            nn.init.zeros_(fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        if self.fcs:
            x = torch.flatten(x, 1)
            for fc in self.fcs:
                x = torch.relu(fc(x))
        return x


class BoxPredictor(nn.Module):
    """Linear class scores (R, K + 1) (background last) and deltas (R, K * 4)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.flatten(x, 1)
        return self.cls_score(x), self.bbox_pred(x)


def fast_rcnn_losses(
    cls_logits: Tensor,
    deltas: Tensor,
    proposal_boxes: Tensor,
    gt_classes: Tensor,
    gt_boxes: Tensor,
    box_coder: BoxCoder,
    *,
    smooth_l1_beta: float = 0.0,
) -> dict[str, Tensor]:
    """Softmax cross-entropy over all sampled ROIs and L1 box loss over foreground ROIs.

    ``cls_logits`` (R, K + 1), ``deltas`` (R, K * 4), ``proposal_boxes`` / ``gt_boxes``
    (R, 4) XYXY, ``gt_classes`` (R,) in [0, K] with K = background. The box loss is divided by
    R, not by #foreground, so each foreground ROI weighs the same whatever the batch holds.
    """
    num_classes = cls_logits.shape[1] - 1
    cls_logits, deltas = cls_logits.float(), deltas.float()  # losses in float32 under autocast
    if gt_classes.numel() == 0:
        zero = cls_logits.sum() * 0.0 + deltas.sum() * 0.0
        return {"loss_cls": zero, "loss_box_reg": zero}
    loss_cls = F.cross_entropy(cls_logits, gt_classes, reduction="mean")
    fg = torch.nonzero((gt_classes >= 0) & (gt_classes < num_classes), as_tuple=True)[0]
    fg_deltas = deltas.view(-1, num_classes, 4)[fg, gt_classes[fg]]
    targets = box_coder.encode(proposal_boxes[fg], gt_boxes[fg])
    loss_box = smooth_l1_sum(fg_deltas, targets, smooth_l1_beta) / max(gt_classes.numel(), 1.0)
    return {"loss_cls": loss_cls, "loss_box_reg": loss_box}


def classification_stats(cls_logits: Tensor, gt_classes: Tensor) -> dict[str, float]:
    """Accuracy figures detectron2 logs for the box head (all, foreground, false negatives)."""
    num = gt_classes.numel()
    if num == 0:
        return {}
    bg = cls_logits.shape[1] - 1
    pred = cls_logits.argmax(dim=1)
    fg = (gt_classes >= 0) & (gt_classes < bg)
    num_fg = int(fg.sum())
    fg_pred = pred[fg]
    stats = {"cls_accuracy": float((pred == gt_classes).sum()) / num}
    if num_fg:
        stats["fg_cls_accuracy"] = float((fg_pred == gt_classes[fg]).sum()) / num_fg
        stats["false_negative"] = float((fg_pred == bg).sum()) / num_fg
    return stats
