"""Standard ROI heads of Mask R-CNN: sample proposals, box branch, mask branch.

Training samples 512 proposals per image (25 % foreground at IoU >= 0.5, ground-truth boxes
appended to the proposals), trains the box branch on all of them and the mask branch on the
foreground ones. Inference scores every proposal, keeps the best 100 detections after
per-class NMS and predicts a mask for each detected box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.vitdet.box_coder import BoxCoder
from rem_models.vitdet.box_head import BoxHead, BoxPredictor, classification_stats, fast_rcnn_losses
from rem_models.vitdet.boxes import pairwise_iou
from rem_models.vitdet.mask_head import MaskHead, mask_rcnn_loss, select_class_masks
from rem_models.vitdet.matcher import Matcher
from rem_models.vitdet.pooler import MultiLevelRoIAlign
from rem_models.vitdet.postprocess import Detections, fast_rcnn_inference
from rem_models.vitdet.rpn import Proposals
from rem_models.vitdet.sampling import subsample_labels


@dataclass
class SampledProposals:
    """Training ROIs of one image, foreground first.

    ``boxes`` (S, 4) XYXY; ``gt_classes`` (S,) in [0, K] with K = background; ``gt_boxes``
    (S, 4) the matched ground truth (the proposal itself where there is none); ``gt_index``
    (S,) the matched ground truth's position in the image's target list.
    """

    boxes: Tensor
    gt_classes: Tensor
    gt_boxes: Tensor
    gt_index: Tensor


class ROIHeads(nn.Module):
    """Box and mask branches on pooled pyramid features.

    ``forward(features, proposals, image_sizes, targets)`` returns a loss dict (``loss_cls``,
    ``loss_box_reg``, ``loss_mask``) in training and a list of :class:`Detections` (in the
    network-input frame, masks as 28 x 28 probabilities) at inference. ``targets`` holds, per
    image, ``boxes`` (G, 4) XYXY, ``labels`` (G,) in [0, K) and ``masks`` (G, H, W).
    """

    def __init__(
        self,
        box_pooler: MultiLevelRoIAlign,
        box_head: BoxHead,
        box_predictor: BoxPredictor,
        mask_pooler: MultiLevelRoIAlign | None = None,
        mask_head: MaskHead | None = None,
        *,
        matcher: Matcher | None = None,
        box_coder: BoxCoder | None = None,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        proposal_append_gt: bool = True,
        smooth_l1_beta: float = 0.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_image: int = 100,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if (mask_pooler is None) != (mask_head is None):
            raise ValueError("pass both mask_pooler and mask_head, or neither")
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head
        self.num_classes = box_predictor.num_classes
        self.matcher = matcher or Matcher((0.5,), (Matcher.NEGATIVE, Matcher.POSITIVE))
        self.box_coder = box_coder or BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_append_gt = proposal_append_gt
        self.smooth_l1_beta = smooth_l1_beta
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_image = detections_per_image
        self.loss_weights = {
            "loss_cls": 1.0,
            "loss_box_reg": 1.0,
            "loss_mask": 1.0,
            **(loss_weights or {}),
        }
        self.stats: dict[str, float] = {}

    @torch.no_grad()
    def sample_proposals(
        self, proposals: Sequence[Tensor], gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> list[SampledProposals]:
        """Match each image's proposal boxes (R_i, 4) to its ground truth and sample ROIs.

        Draws from the global RNG through :func:`subsample_labels`, image by image.
        """
        samples = []
        for boxes, targets, labels in zip(proposals, gt_boxes, gt_labels):
            if self.proposal_append_gt:
                boxes = torch.cat([boxes, targets.to(boxes.dtype)])
            matches, match_labels = self.matcher(pairwise_iou(targets, boxes))
            if len(targets):
                classes = labels[matches]
                classes[match_labels == 0] = self.num_classes
                classes[match_labels == -1] = -1
            else:
                classes = torch.full_like(matches, self.num_classes)
            pos, neg = subsample_labels(
                classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            picked = torch.cat([pos, neg])
            sampled_boxes = boxes[picked]
            samples.append(
                SampledProposals(
                    boxes=sampled_boxes,
                    gt_classes=classes[picked],
                    gt_boxes=targets[matches[picked]] if len(targets) else sampled_boxes,
                    gt_index=matches[picked],
                )
            )
        return samples

    def box_features(self, features: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
        """Box-head features (R, D) for per-image boxes, R = total number of boxes."""
        return self.box_head(self.box_pooler(features, boxes))

    def mask_logits(self, features: Sequence[Tensor], boxes: Sequence[Tensor]) -> Tensor:
        """Mask logits (R, K, M, M) for per-image boxes."""
        if self.mask_head is None or self.mask_pooler is None:
            raise RuntimeError("this model has no mask branch")
        return self.mask_head(self.mask_pooler(features, boxes))

    def losses(
        self,
        features: Sequence[Tensor],
        samples: Sequence[SampledProposals],
        gt_masks: Sequence[Tensor] | None,
    ) -> dict[str, Tensor]:
        """Box and mask losses of sampled ROIs; ``gt_masks`` per image (G_i, H, W)."""
        cls_logits, deltas = self.box_predictor(
            self.box_features(features, [s.boxes for s in samples])
        )
        gt_classes = torch.cat([s.gt_classes for s in samples])
        losses = fast_rcnn_losses(
            cls_logits,
            deltas,
            torch.cat([s.boxes for s in samples]),
            gt_classes,
            torch.cat([s.gt_boxes for s in samples]),
            self.box_coder,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        num_bg = [int((s.gt_classes == self.num_classes).sum()) for s in samples]
        stats = {
            "num_fg_samples": sum(len(s.gt_classes) - b for s, b in zip(samples, num_bg))
            / max(len(samples), 1),
            "num_bg_samples": sum(num_bg) / max(len(samples), 1),
            **classification_stats(cls_logits.detach(), gt_classes),
        }
        if self.mask_head is not None:
            if gt_masks is None:
                raise ValueError("the mask branch needs ground-truth masks in training")
            fg = [(s.gt_classes >= 0) & (s.gt_classes < self.num_classes) for s in samples]
            fg_boxes = [s.boxes[m] for s, m in zip(samples, fg)]
            logits = self.mask_logits(features, fg_boxes)
            loss_mask, mask_stats = mask_rcnn_loss(
                logits,
                torch.cat([s.gt_classes[m] for s, m in zip(samples, fg)]),
                gt_masks,
                [s.gt_index[m] for s, m in zip(samples, fg)],
                fg_boxes,
            )
            losses["loss_mask"] = loss_mask
            stats.update({f"mask_{k}": v for k, v in mask_stats.items()})
        self.stats = stats
        return {k: v * self.loss_weights[k] for k, v in losses.items()}

    def predict(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Proposals],
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[Detections]:
        """Detections per image (boxes in the unpadded input frame, clipped to it)."""
        cls_logits, deltas = self.box_predictor(
            self.box_features(features, [p.boxes for p in proposals])
        )
        counts = [len(p) for p in proposals]
        boxes = self.box_coder.decode(deltas, torch.cat([p.boxes for p in proposals]))
        # Scores and boxes in float32 even under autocast: they are outputs, compared at 1e-5.
        probs = F.softmax(cls_logits.float(), dim=-1)
        detections = [
            fast_rcnn_inference(
                b,
                s,
                size,
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                topk=self.detections_per_image,
            )
            for b, s, size in zip(boxes.split(counts), probs.split(counts), image_sizes)
        ]
        if self.mask_head is not None:
            self.predict_masks(features, detections)
        return detections

    def predict_masks(self, features: Sequence[Tensor], detections: Sequence[Detections]) -> None:
        """Fill ``mask_probs`` (D, 1, M, M) of each detection set: sigmoid of its class's mask."""
        logits = self.mask_logits(features, [d.boxes for d in detections])
        classes = torch.cat([d.classes for d in detections])
        probs = select_class_masks(logits.float(), classes)[:, None].sigmoid()
        for det, p in zip(detections, probs.split([len(d) for d in detections])):
            det.mask_probs = p

    def forward(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Proposals],
        image_sizes: Sequence[tuple[int, int]],
        targets: Sequence[Mapping[str, Tensor]] | None = None,
    ) -> dict[str, Tensor] | list[Detections]:
        if not self.training:
            return self.predict(features, proposals, image_sizes)
        if targets is None:
            raise ValueError("the ROI heads need targets in training mode")
        samples = self.sample_proposals(
            [p.boxes for p in proposals],
            [t["boxes"] for t in targets],
            [t["labels"] for t in targets],
        )
        gt_masks = [t["masks"] for t in targets] if self.mask_head is not None else None
        return self.losses(features, samples, gt_masks)
