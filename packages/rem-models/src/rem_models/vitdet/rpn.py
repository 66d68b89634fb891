"""Region proposal network: objectness and box deltas per anchor, proposals by top-k + NMS.

Training labels anchors with an IoU matcher (0.3 / 0.7, low-quality matches on), samples
256 per image at most half positive, and returns BCE + L1 losses normalised by
256 x #images. Proposals are always produced without gradients: the ROI heads treat them as
fixed inputs (approximate joint training).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from rem_models.vitdet.anchors import AnchorGenerator
from rem_models.vitdet.box_coder import BoxCoder, smooth_l1_sum
from rem_models.vitdet.boxes import clip_boxes, nonempty, pairwise_iou
from rem_models.vitdet.matcher import Matcher
from rem_models.vitdet.sampling import subsample_labels


@dataclass
class Proposals:
    """Region proposals of one image: ``boxes`` (R, 4) XYXY in input-image pixels, clipped to
    the image, and their objectness ``logits`` (R,), highest first."""

    boxes: Tensor
    logits: Tensor

    def __len__(self) -> int:
        return self.boxes.shape[0]


class RPNHead(nn.Module):
    """Shared 3x3 conv tower (ReLU, no norm) and 1x1 predictors, run on every pyramid level.

    ``conv_dims`` entries of -1 keep the input width. Returns per level the objectness
    logits (N, A, H, W) and anchor deltas (N, A * 4, H, W), deltas grouped per anchor.
    """

    def __init__(
        self, in_channels: int, num_anchors: int, conv_dims: Sequence[int] = (-1, -1)
    ) -> None:
        super().__init__()
        convs = []
        channels = in_channels
        for dim in conv_dims:
            out = channels if dim == -1 else dim
            if out <= 0:
                raise ValueError(f"RPN conv width must be positive or -1, got {dim}")
            convs.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
            channels = out
        self.convs = nn.ModuleList(convs)
        self.objectness = nn.Conv2d(channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for x in features:
            for conv in self.convs:
                x = torch.relu(conv(x))
            logits.append(self.objectness(x))
            deltas.append(self.anchor_deltas(x))
        return logits, deltas


def flatten_predictions(
    logits: Sequence[Tensor], deltas: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Per level (N, A, H, W) and (N, A*4, H, W) -> (N, H*W*A) and (N, H*W*A, 4), in the
    anchor order of :class:`AnchorGenerator`."""
    flat_logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
    flat_deltas = [
        x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
        for x in deltas
    ]
    return flat_logits, flat_deltas


@torch.no_grad()
def find_top_proposals(
    boxes: Sequence[Tensor],
    logits: Sequence[Tensor],
    image_sizes: Sequence[tuple[int, int]],
    *,
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float = 0.0,
    training: bool = False,
) -> list[Proposals]:
    """Select proposals: top ``pre_nms_topk`` per level, clip, drop tiny boxes, NMS within
    each level, keep the best ``post_nms_topk`` per image.

    ``boxes[l]`` (N, R_l, 4) are decoded anchors of level l and ``logits[l]`` (N, R_l) their
    objectness. ``image_sizes`` are the (H, W) of the unpadded images. Non-finite predictions
    are dropped at inference and raise ``FloatingPointError`` in training (divergence).
    """
    num_images = len(image_sizes)
    device = boxes[0].device
    batch_idx = torch.arange(num_images, device=device)[:, None]
    top_scores, top_boxes, level_ids = [], [], []
    for level, (boxes_l, logits_l) in enumerate(zip(boxes, logits)):
        k = min(logits_l.shape[1], pre_nms_topk)
        scores, idx = logits_l.topk(k, dim=1)
        top_scores.append(scores)
        top_boxes.append(boxes_l[batch_idx, idx])
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    scores_all = torch.cat(top_scores, dim=1)
    boxes_all = torch.cat(top_boxes, dim=1)
    levels_all = torch.cat(level_ids, dim=0)

    results = []
    for n, size in enumerate(image_sizes):
        image_boxes, image_scores, image_levels = boxes_all[n], scores_all[n], levels_all
        valid = torch.isfinite(image_boxes).all(dim=1) & torch.isfinite(image_scores)
        if not bool(valid.all()):
            if training:
                raise FloatingPointError(
                    "RPN predicted non-finite boxes or scores: training diverged"
                )
            image_boxes, image_scores, image_levels = (
                image_boxes[valid],
                image_scores[valid],
                image_levels[valid],
            )
        image_boxes = clip_boxes(image_boxes, size)
        keep = nonempty(image_boxes, min_box_size)
        if not bool(keep.all()):
            image_boxes, image_scores, image_levels = (
                image_boxes[keep],
                image_scores[keep],
                image_levels[keep],
            )
        keep = batched_nms(image_boxes.float(), image_scores, image_levels, nms_thresh)
        keep = keep[:post_nms_topk]
        results.append(Proposals(image_boxes[keep], image_scores[keep]))
    return results


def rpn_losses(
    anchors: Tensor,
    logits: Tensor,
    deltas: Tensor,
    gt_labels: Tensor,
    matched_boxes: Tensor,
    box_coder: BoxCoder,
    *,
    batch_size_per_image: int,
    smooth_l1_beta: float = 0.0,
) -> dict[str, Tensor]:
    """Objectness BCE over sampled anchors and box L1 over positives, each / (256 x #images).

    ``anchors`` (R, 4) of all levels, ``logits`` (N, R), ``deltas`` (N, R, 4), ``gt_labels``
    (N, R) in {-1 ignore, 0 negative, 1 positive}, ``matched_boxes`` (N, R, 4) the ground
    truth each anchor is matched to.
    """
    num_images = gt_labels.shape[0]
    logits, deltas = logits.float(), deltas.float()
    positive = gt_labels == 1
    pos_image, pos_anchor = torch.nonzero(positive, as_tuple=True)
    target_deltas = box_coder.encode(anchors[pos_anchor], matched_boxes[pos_image, pos_anchor])
    loc = smooth_l1_sum(deltas[positive], target_deltas, smooth_l1_beta)
    valid = gt_labels >= 0
    cls = F.binary_cross_entropy_with_logits(
        logits[valid], gt_labels[valid].to(torch.float32), reduction="sum"
    )
    normalizer = batch_size_per_image * num_images
    return {"loss_rpn_cls": cls / normalizer, "loss_rpn_loc": loc / normalizer}


class RPN(nn.Module):
    """Region proposal network over the pyramid levels given to :meth:`forward`.

    ``pre_nms_topk`` and ``post_nms_topk`` are (train, test) pairs. ``forward`` returns the
    proposals of each image and, in training, the losses ``loss_rpn_cls`` / ``loss_rpn_loc``.
    """

    def __init__(
        self,
        head: RPNHead,
        anchor_generator: AnchorGenerator,
        *,
        matcher: Matcher | None = None,
        box_coder: BoxCoder | None = None,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk: tuple[int, int] = (2000, 1000),
        post_nms_topk: tuple[int, int] = (1000, 1000),
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        smooth_l1_beta: float = 0.0,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.matcher = matcher or Matcher(
            (0.3, 0.7), (Matcher.NEGATIVE, Matcher.IGNORE, Matcher.POSITIVE), True
        )
        self.box_coder = box_coder or BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = pre_nms_topk
        self.post_nms_topk = post_nms_topk
        self.nms_thresh = nms_thresh
        self.min_box_size = min_box_size
        self.smooth_l1_beta = smooth_l1_beta
        self.loss_weights = {"loss_rpn_cls": 1.0, "loss_rpn_loc": 1.0, **(loss_weights or {})}
        self.stats: dict[str, float] = {}

    def predict(
        self, features: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Anchors (R_l, 4), logits (N, R_l) and deltas (N, R_l, 4) for every level l."""
        logits, deltas = flatten_predictions(*self.head(features))
        return self.anchor_generator(features), logits, deltas

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: Tensor, gt_boxes: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Training labels for ``anchors`` (R, 4) of all levels, given each image's ground-truth
        boxes (G_i, 4): returns int8 labels (N, R) in {-1, 0, 1} after sampling and the
        matched ground-truth boxes (N, R, 4) (zeros for an image without ground truth)."""
        labels, matched = [], []
        for boxes in gt_boxes:
            matches, image_labels = self.matcher(pairwise_iou(boxes, anchors))
            pos, neg = subsample_labels(
                image_labels, self.batch_size_per_image, self.positive_fraction, 0
            )
            image_labels = torch.full_like(image_labels, -1)
            image_labels[pos] = 1
            image_labels[neg] = 0
            labels.append(image_labels)
            matched.append(boxes[matches] if len(boxes) else torch.zeros_like(anchors))
        return torch.stack(labels), torch.stack(matched)

    def forward(
        self,
        features: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
        gt_boxes: Sequence[Tensor] | None = None,
    ) -> tuple[list[Proposals], dict[str, Tensor]]:
        """Proposals for images of ``image_sizes`` (H, W) from ``features`` (N, C, H_l, W_l).

        ``gt_boxes`` (one (G_i, 4) XYXY tensor per image) is required in training.
        """
        anchors, logits, deltas = self.predict(features)
        losses: dict[str, Tensor] = {}
        if self.training:
            if gt_boxes is None:
                raise ValueError("the RPN needs ground-truth boxes in training mode")
            all_anchors = torch.cat(anchors)
            gt_labels, matched = self.label_and_sample_anchors(all_anchors, gt_boxes)
            self.stats = {
                "num_pos_anchors": (gt_labels == 1).sum().item() / len(gt_boxes),
                "num_neg_anchors": (gt_labels == 0).sum().item() / len(gt_boxes),
            }
            raw = rpn_losses(
                all_anchors,
                torch.cat(logits, dim=1),
                torch.cat(deltas, dim=1),
                gt_labels,
                matched,
                self.box_coder,
                batch_size_per_image=self.batch_size_per_image,
                smooth_l1_beta=self.smooth_l1_beta,
            )
            losses = {k: v * self.loss_weights[k] for k, v in raw.items()}
        with torch.no_grad():
            n = logits[0].shape[0]
            decoded = [
                self.box_coder.decode(d.reshape(-1, 4), a.repeat(n, 1)).view(n, -1, 4)
                for a, d in zip(anchors, deltas)
            ]
            stage = 0 if self.training else 1
            proposals = find_top_proposals(
                decoded,
                [x.detach().float() for x in logits],
                image_sizes,
                nms_thresh=self.nms_thresh,
                pre_nms_topk=self.pre_nms_topk[stage],
                post_nms_topk=self.post_nms_topk[stage],
                min_box_size=self.min_box_size,
                training=self.training,
            )
        return proposals, losses
