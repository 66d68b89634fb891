"""CIM's pseudo-labelling rules for refinement branch k (fed by branch k-1, or MIL for k = 0).

Every function works on one image's proposals: ``iou`` is the (N, N) mask-IoU matrix and ``asy``
the (N, N) containment matrix (``asy[i, j] = |M_i ∩ M_j| / |M_j|``, see :mod:`.geometry`).
Classes are 0-based foreground indices; assigned labels use 0 for background and ``c + 1`` for
class c, as the refinement classifiers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONTAIN_THRESHOLD = 0.85  # "j lies inside i" when more than 85% of j is covered by i
BIG_FRACTION = 0.9  # a proposal containing >= 90% of all proposals is "big" (a scene blob)
SEED_FRACTION = 0.1  # seeds come from the top 10% of proposals by class score


def branch_thresholds(k: int) -> tuple[float, float]:
    """``(cls_thr, iou_thr)`` of refinement branch k: 0.25 + 0.1k and 0.5 + 0.1k.

    ``cls_thr`` is both the seed NMS threshold and the foreground IoU threshold; ``iou_thr``
    decides the integrity target.
    """
    return 0.25 + 0.1 * k, 0.5 + 0.1 * k


def big_proposals(
    asy: np.ndarray, contain_thr: float = CONTAIN_THRESHOLD, fraction: float = BIG_FRACTION
) -> np.ndarray:
    """(N,) bool: proposals containing (asy > contain_thr) at least ``fraction`` of all proposals.

    Such proposals cover most of the scene; they would always win the "most complete" search.
    """
    if len(asy) == 0:
        return np.zeros(0, dtype=bool)
    return (asy > contain_thr).mean(axis=1) >= fraction


def select_seeds(
    scores: np.ndarray, iou: np.ndarray, nms_thr: float, top_fraction: float = SEED_FRACTION
) -> np.ndarray:
    """Seed indices for one class: the top ``ceil(top_fraction * N)`` by score, then mask-IoU NMS.

    NMS keeps a proposal unless its IoU with an already kept (higher-scoring) seed exceeds
    ``nms_thr``. Returns indices in decreasing score order (ties keep the lower index first).
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = max(1, math.ceil(top_fraction * n))
    order = np.argsort(-np.asarray(scores), kind="stable")[:top]
    kept: list[int] = []
    for i in order:
        if all(iou[i, j] <= nms_thr for j in kept):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def complete_instance(
    seed: int,
    asy: np.ndarray,
    integrity: np.ndarray,
    big: np.ndarray,
    contain_thr: float = CONTAIN_THRESHOLD,
) -> int:
    """The most complete proposal for ``seed``: among proposals containing more than 85% of the
    seed (the seed itself included) and not big, the one with the highest ``integrity`` (N,).

    Ties go to the seed, then to the lower index, so the answer is deterministic.
    """
    candidates = np.flatnonzero((asy[:, seed] > contain_thr) & ~big)
    candidates = np.union1d(candidates, [seed])
    best = max(integrity[candidates])
    if integrity[seed] == best:
        return int(seed)
    return int(candidates[integrity[candidates] == best][0])


@dataclass(frozen=True)
class PseudoGts:
    """Pseudo ground truths of one image: proposal index, 0-based class and weight, each (G,)."""

    index: np.ndarray
    category: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def take(self, keep: np.ndarray) -> PseudoGts:
        return PseudoGts(self.index[keep], self.category[keep], self.weight[keep])


def mine_pseudo_gts(
    scores: np.ndarray,
    integrity: np.ndarray | None,
    image_labels: np.ndarray,
    iou: np.ndarray,
    asy: np.ndarray,
    k: int,
) -> PseudoGts:
    """Complete-instance pseudo ground truths for branch k.

    ``scores`` (N, C): the previous branch's foreground scores (cls x det for MIL);
    ``integrity`` (N, C): its integrity scores (None for MIL: the class score stands in);
    ``image_labels`` (C,) bool. For each present class: seeds by :func:`select_seeds` with NMS at
    ``cls_thr``; each seed is replaced by its :func:`complete_instance`, weighted by the seed's
    score. A proposal chosen twice for one class keeps the larger weight.
    """
    cls_thr, _ = branch_thresholds(k)
    big = big_proposals(asy)
    best: dict[tuple[int, int], float] = {}
    for c in np.flatnonzero(image_labels):
        column = scores[:, c]
        quality = column if integrity is None else integrity[:, c]
        for seed in select_seeds(column, iou, cls_thr):
            chosen = complete_instance(int(seed), asy, quality, big)
            key = (chosen, int(c))
            best[key] = max(best.get(key, -np.inf), float(column[seed]))
    keys = sorted(best, key=lambda key: (key[1], key[0]))
    return PseudoGts(
        np.asarray([i for i, _ in keys], dtype=np.int64),
        np.asarray([c for _, c in keys], dtype=np.int64),
        np.asarray([best[key] for key in keys], dtype=np.float32),
    )


def resample_pseudo_gts(gts: PseudoGts, rng: np.random.Generator) -> PseudoGts:
    """Anti-noise resampling: draw ``len(gts)`` times with replacement, probability ∝ weight,
    and keep each drawn pseudo-GT once (original order). Low-weight (likely wrong) pseudo-GTs
    survive less often, yet every one has a chance over the epochs."""
    if len(gts) == 0:
        return gts
    w = np.clip(gts.weight.astype(np.float64), 0, None)
    p = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    drawn = rng.choice(len(gts), size=len(gts), replace=True, p=p)
    return gts.take(np.unique(drawn))


@dataclass(frozen=True)
class Assignment:
    """Per-proposal targets of one branch, each (N,): ``labels`` (0 = background, c + 1),
    ``weights`` (0 = ignored), ``iou_targets`` (1.0 when IoU with its pseudo-GT > iou_thr),
    ``gt`` (index into the pseudo-GTs, -1 when none overlaps)."""

    labels: np.ndarray
    weights: np.ndarray
    iou_targets: np.ndarray
    gt: np.ndarray


def assign_targets(iou: np.ndarray, big: np.ndarray, gts: PseudoGts, k: int) -> Assignment:
    """Assign every proposal to its max-IoU pseudo-GT.

    IoU 0 (touches no pseudo-GT) -> ignored; IoU < ``cls_thr`` or a big proposal -> background
    with the pseudo-GT's weight; otherwise that pseudo-GT's class and weight. The integrity
    target is ``IoU > iou_thr``.
    """
    n = len(iou)
    labels = np.zeros(n, dtype=np.int64)
    weights = np.zeros(n, dtype=np.float32)
    targets = np.zeros(n, dtype=np.float32)
    gt = np.full(n, -1, dtype=np.int64)
    if len(gts) == 0 or n == 0:
        return Assignment(labels, weights, targets, gt)
    cls_thr, iou_thr = branch_thresholds(k)
    overlaps = iou[:, gts.index]  # (N, G)
    best = overlaps.argmax(axis=1)
    best_iou = overlaps[np.arange(n), best]
    touched = best_iou > 0
    gt[touched] = best[touched]
    weights[touched] = gts.weight[best[touched]]
    foreground = touched & (best_iou >= cls_thr) & ~big
    labels[foreground] = gts.category[best[foreground]] + 1
    targets[touched] = (best_iou[touched] > iou_thr).astype(np.float32)
    return Assignment(labels, weights, targets, gt)
