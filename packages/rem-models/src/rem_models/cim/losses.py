"""CIM's training losses: MIL BCE, PCL (x12), weighted refinement CE (x3 on the first branch)
and smooth-L1 integrity (x3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rem_models.cim.data import CimSample
from rem_models.cim.model import CimOutputs
from rem_models.cim.pcl import pcl_loss
from rem_models.cim.pseudo_labels import assign_targets, mine_pseudo_gts, resample_pseudo_gts


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms, as published."""

    mil: float = 1.0
    pcl: float = 12.0
    refine_first: float = 3.0
    refine: float = 1.0
    integrity: float = 3.0


def mil_loss(mil: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Image-level BCE of the summed (N, C) proposal scores against (C,) 0/1 labels."""
    image_scores = mil.sum(dim=0).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(image_scores, labels.to(image_scores.dtype))


def refine_loss(probs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted CE over (N, C+1) probabilities, summed and divided by N (ignored: weight 0)."""
    picked = probs.gather(1, labels[:, None]).squeeze(1).clamp_min(1e-6)
    return -(weights * picked.log()).sum() / max(len(probs), 1)


def integrity_loss(
    integrity: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Smooth-L1 between the (N, C) sigmoid integrity of each foreground proposal's class and
    its 0/1 target, weighted, divided by N."""
    fg = (labels > 0) & (weights > 0)
    if not fg.any():
        return integrity.sum() * 0.0
    pred = integrity[fg, labels[fg] - 1]
    per = F.smooth_l1_loss(pred, targets[fg], reduction="none")
    return (weights[fg] * per).sum() / max(len(integrity), 1)


def cim_losses(
    outputs: CimOutputs,
    sample: CimSample,
    rng: np.random.Generator,
    weights: LossWeights | None = None,
) -> dict[str, torch.Tensor]:
    """All losses of one image. Branch k is supervised by pseudo-labels mined from branch k-1's
    detached outputs (MIL for k = 0), resampled against noise, assigned by max IoU."""
    w = weights or LossWeights()
    device = outputs.mil.device
    labels = torch.as_tensor(sample.labels, device=device)
    losses = {"loss_mil": w.mil * mil_loss(outputs.mil, labels.float())}
    scores = outputs.mil.detach().cpu().numpy()
    integrity = None
    refine_total = outputs.mil.new_zeros(())
    integrity_total = outputs.mil.new_zeros(())
    for k, (cls, iou) in enumerate(zip(outputs.refine_cls, outputs.refine_iou, strict=True)):
        gts = mine_pseudo_gts(scores, integrity, sample.labels, sample.iou, sample.asy, k)
        gts = resample_pseudo_gts(gts, rng)
        target = assign_targets(sample.iou, sample.big, gts, k)
        t_labels = torch.as_tensor(target.labels, device=device)
        t_weights = torch.as_tensor(target.weights, device=device)
        t_iou = torch.as_tensor(target.iou_targets, device=device)
        scale = w.refine_first if k == 0 else w.refine
        refine_total = refine_total + scale * refine_loss(cls, t_labels, t_weights)
        integrity_total = integrity_total + w.integrity * integrity_loss(
            iou, t_labels, t_weights, t_iou
        )
        scores = cls[:, 1:].detach().cpu().numpy()
        integrity = iou.detach().cpu().numpy()
    losses["loss_refine"] = refine_total
    losses["loss_integrity"] = integrity_total
    if sample.clusters is not None:
        # Cluster weight: the best MIL score of its members for the cluster's class.
        mil = outputs.mil.detach()
        cl = sample.clusters
        cw = []
        for j, c in enumerate(cl.categories):
            members = torch.as_tensor((cl.cluster == j) & (cl.labels > 0), device=device)
            cw.append(mil[members, int(c)].max() if members.any() else mil.new_tensor(0.0))
        cluster_weights = torch.stack(cw) if cw else None
        losses["loss_pcl"] = w.pcl * pcl_loss(outputs.refine_cls[0], cl, cluster_weights)
    return losses
