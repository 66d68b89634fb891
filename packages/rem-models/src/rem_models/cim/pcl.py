"""PCL-style proposal clusters grown from class peaks (PRM peaks, or points such as BESTIE's).

A peak is ``(x, y, c)``: a pixel in the image frame and a 0-based class. Peaks are processed in
the order given, weakest first (CIM sorts PRM peaks by score ascending). For each peak the
proposals covering its pixel are averaged and the mean thresholded at 0.7: the cluster centre.
Proposals with IoU > 0.5 to the centre join that peak's cluster, replacing any earlier
(weaker) peak's claim; proposals with 0 < IoU <= 0.5 to some centre and in no cluster become
background; proposals that touch no centre are ignored. An image with no peaks at all makes
every proposal background. The PCL loss then asks each cluster, as a whole, for its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rem_models.cim.geometry import mask_iou_matrix

CENTRE_THRESHOLD = 0.7
JOIN_IOU = 0.5


@dataclass(frozen=True)
class PeakClusters:
    """Per-proposal cluster targets, each (N,): ``labels`` (0 = background, c + 1 = member of a
    class-c cluster, -1 = ignored) and ``cluster`` (index into ``categories``: a member's
    cluster; for background the centre it overlaps most, whose weight it takes; -1 when there
    is none); plus the clusters' 0-based ``categories`` (K,) and centre masks (K, H, W) bool."""

    cluster: np.ndarray
    labels: np.ndarray
    categories: np.ndarray
    centres: np.ndarray


def peak_clusters(
    masks: np.ndarray,
    peaks: Sequence[tuple[float, float, int]],
    centre_thr: float = CENTRE_THRESHOLD,
    join_iou: float = JOIN_IOU,
) -> PeakClusters:
    """Clusters of (N, H, W) bool proposals around ``peaks`` (see the module docstring).

    A peak covered by no proposal (or whose mean mask is empty) makes no cluster.
    """
    n, h, w = masks.shape
    centres, categories = [], []
    cluster = np.full(n, -1, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    nearest = np.full(n, -1, dtype=np.int64)
    nearest_iou = np.zeros(n)
    for x, y, c in peaks:
        col = min(max(int(x), 0), w - 1)
        row = min(max(int(y), 0), h - 1)
        covering = masks[:, row, col]
        if not covering.any():
            continue
        centre = masks[covering].mean(axis=0) > centre_thr
        if not centre.any():
            continue
        j = len(centres)
        centres.append(centre)
        categories.append(int(c))
        iou = mask_iou_matrix(masks, centre[None])[:, 0]
        member = iou > join_iou
        cluster[member] = j  # later, stronger peaks overwrite
        labels[member] = int(c) + 1
        closer = iou > nearest_iou
        nearest[closer] = j
        nearest_iou[closer] = iou[closer]
    background = (labels < 0) & (nearest_iou > 0) if len(peaks) else np.ones(n, dtype=bool)
    labels[background] = 0
    cluster[background] = nearest[background]
    centre_arr = np.asarray(centres, dtype=bool).reshape(len(centres), h, w)
    return PeakClusters(cluster, labels, np.asarray(categories, dtype=np.int64), centre_arr)


def pcl_loss(
    probs: torch.Tensor, clusters: PeakClusters, cluster_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """PCL's cluster loss on (N, C+1) softmax probabilities (column 0 = background).

    Each cluster contributes ``-w * M * log(mean of its members' class probability)`` (M members),
    each background proposal ``-w * log(p_bg)`` with its nearest cluster's weight (1 when it has
    none: an image without peaks); the sum is divided by N. ``cluster_weights`` (K,) default to 1.
    """
    n = probs.shape[0]
    k = len(clusters.categories)
    if n == 0 or not (clusters.labels >= 0).any():
        return probs.sum() * 0.0
    weights = cluster_weights if cluster_weights is not None else probs.new_ones(k)
    eps = 1e-6
    total = probs.new_zeros(())
    cluster = torch.as_tensor(clusters.cluster, device=probs.device)
    labels = torch.as_tensor(clusters.labels, device=probs.device)
    for j in range(k):
        members = (cluster == j) & (labels > 0)
        m = int(members.sum())
        if m:
            c = int(clusters.categories[j]) + 1
            total = total - weights[j] * m * torch.log(probs[members, c].mean().clamp_min(eps))
    background = labels == 0
    if background.any():
        # Background proposals carry the weight of the centre they overlap most.
        nearest = cluster[background]
        w_bg = torch.where(nearest >= 0, weights[nearest.clamp_min(0)], 1.0) if k else 1.0
        total = total - (w_bg * torch.log(probs[background, 0].clamp_min(eps))).sum()
    return total / n
