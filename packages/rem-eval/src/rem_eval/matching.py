"""COCOeval.evaluateImg for all groups, area ranges and IoU thresholds at once.

The reference walks, per threshold, the detections of a group in score order; each takes the
GT with the highest IoU (>= the threshold) among those still free (crowd GT never become
busy), preferring non-ignored GT over ignored ones, and on equal IoU the *later* GT in the
reordered list (the test is >=). That closed form is what is computed here (eval.md §1.5):

1. class: a free, reachable, non-ignored GT beats an ignored one;
2. highest IoU within the best class;
3. on equal IoU, the highest position in the group (stable reorder keeps file order within a
   class, so "later" is simply the larger original position).

Only the order of detections inside a group matters, so all groups advance together, one
detection rank at a time, over the candidate pairs of that rank; the (area range, threshold)
axes ride along as array dimensions. Detections without candidates are unmatched everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_eval.pairs import PairSet


@dataclass
class Matches:
    """Matching results for the candidate detections.

    ``cand_det`` are detection positions (in Groups' order) that have at least one candidate
    pair; ``gt_of[c, a, t]`` is the matched GT position for ``cand_det[c]`` or -1.
    """

    cand_det: np.ndarray
    gt_of: np.ndarray


def match(
    pairs: PairSet,
    d_rank: np.ndarray,
    g_pos: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    iou_thrs: np.ndarray,
    crowd_reusable: bool = True,
) -> Matches:
    """Greedy matching of every candidate detection (see the module docstring).

    ``gt_ignore`` is (num GT, A); ``gt_crowd`` (num GT,) — crowd GT stay free when
    ``crowd_reusable`` (COCO); LVIS has no crowd exception.
    """
    A = gt_ignore.shape[1]
    T = iou_thrs.size
    best0 = np.minimum(iou_thrs, 1 - 1e-10)
    if pairs.det.size == 0:
        return Matches(np.zeros(0, np.int64), np.zeros((0, A, T), np.int64))
    cand_det, p_c = np.unique(pairs.det, return_inverse=True)
    gt_of = np.full((cand_det.size, A, T), -1, dtype=np.int64)
    busy = np.zeros((gt_ignore.shape[0], A, T), dtype=bool)
    reusable = gt_crowd if crowd_reusable else np.zeros_like(gt_crowd)

    rank = d_rank[pairs.det]
    order = np.lexsort((g_pos[pairs.gt], pairs.det, rank))
    rank = rank[order]
    p_c = p_c[order]
    p_gt = pairs.gt[order]
    p_iou = pairs.iou[order]
    p_pos = g_pos[p_gt]
    reach = p_iou[:, None] >= best0[None, :]  # (P, T)
    nonig = ~gt_ignore[p_gt]  # (P, A)
    step_edges = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1], True])
    for s0, s1 in zip(step_edges[:-1].tolist(), step_edges[1:].tolist()):
        c = p_c[s0:s1]
        g = p_gt[s0:s1]
        seg = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        seg_of = np.cumsum(np.r_[True, c[1:] != c[:-1]]) - 1
        free = ~busy[g] | reusable[g][:, None, None]  # (P, A, T)
        ok = reach[s0:s1, None, :] & free
        cls = ok.astype(np.int8) * (1 + nonig[s0:s1, :, None].astype(np.int8))
        best_cls = np.maximum.reduceat(cls, seg, axis=0)
        hit = (cls == best_cls[seg_of]) & (cls > 0)
        v = np.where(hit, p_iou[s0:s1, None, None], -np.inf)
        best_v = np.maximum.reduceat(v, seg, axis=0)
        hit &= v == best_v[seg_of]
        pos = np.where(hit, p_pos[s0:s1, None, None], -1)
        best_pos = np.maximum.reduceat(pos, seg, axis=0)
        hit &= pos == best_pos[seg_of]
        pi, ai, ti = np.nonzero(hit)
        if pi.size:
            busy[g[pi], ai, ti] = True
            gt_of[c[pi], ai, ti] = g[pi]
    return Matches(cand_det, gt_of)


def det_outcomes(
    num_det: int,
    matches: Matches,
    gt_ignore: np.ndarray,
    gt_id_zero: np.ndarray,
    unmatched_ignore: np.ndarray,
    T: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP / FP flags of the candidate detections, as COCOeval.accumulate derives them.

    Returns ``cand`` (num_det,): each detection's column in the flag arrays or -1 when it has
    no candidate pair (then it is simply unmatched), and ``tp``, ``fp``: (A, T, C) booleans.
    A detection matched to a GT inherits the GT's ignore flag; an unmatched one is ignored when
    ``unmatched_ignore[d, a]`` (area outside the range; LVIS also not-exhaustive categories).
    A match to a GT whose id is 0 reads as "unmatched" in the reference (ids are tested
    against 0), which ``gt_id_zero`` reproduces.
    """
    A = unmatched_ignore.shape[1]
    cand = np.full(num_det, -1, dtype=np.int64)
    C = matches.cand_det.size
    cand[matches.cand_det] = np.arange(C)
    if C == 0:
        empty = np.zeros((A, T, 0), dtype=bool)
        return cand, empty, empty.copy()
    g = matches.gt_of
    has = g >= 0
    gc = np.where(has, g, 0)
    a_idx = np.arange(A)[None, :, None]
    ig_m = np.where(has, gt_ignore[gc, a_idx], False)
    nonzero = has & ~gt_id_zero[gc]
    dig = ig_m | (~nonzero & unmatched_ignore[matches.cand_det][:, :, None])
    tp = np.ascontiguousarray((nonzero & ~dig).transpose(1, 2, 0))
    fp = np.ascontiguousarray((~nonzero & ~dig).transpose(1, 2, 0))
    return cand, tp, fp
