"""Which detections meet which ground truths: the (image, category) groups of COCOeval.

pycocotools evaluates every (image, category) pair on its own: detections sorted by score
(stable, so ties keep input order) and cut to ``maxDets[-1]``, ground truths in file order. Here
that is done once for all groups with a lexsort, giving flat arrays sorted by (group, rank) for
detections and (group, file order) for ground truths, plus per-group offsets. With
``use_cats=False`` a group is a whole image, and within it pycocotools orders records by
category (in ``catIds`` order) before file order; the sort keys reproduce that too.

LVIS differs (eval.md §3): the per-image cap was applied at load, there is no per-group cut,
zero-area records are dropped, and the federated filter removes detections of categories that
were neither annotated nor declared absent on the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core.errors import RemError
from rem_eval.params import EvalParams
from rem_eval.tables import Detections, GroundTruth


@dataclass
class Groups:
    """Detections and ground truths of the evaluated images and categories, grouped.

    Detection arrays (prefix ``d_``) are sorted by (group, rank); ground-truth arrays (``g_``)
    by (group, position in group). ``*_start`` are offsets of each group (length G + 1).
    ``k`` is the accumulate category index (0 when categories are pooled).
    """

    num_k: int
    eval_cat_ids: np.ndarray
    eval_img_ids: np.ndarray
    group_img: np.ndarray
    group_k: np.ndarray
    det_start: np.ndarray
    gt_start: np.ndarray
    d_idx: np.ndarray
    d_rank: np.ndarray
    d_k: np.ndarray
    d_imgpos: np.ndarray
    d_score: np.ndarray
    g_idx: np.ndarray
    g_k: np.ndarray
    g_imgpos: np.ndarray

    @property
    def num_groups(self) -> int:
        return int(self.group_img.size)

    @property
    def det_group(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_groups), np.diff(self.det_start))

    @property
    def gt_group(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_groups), np.diff(self.gt_start))


def _unique_sorted(values: list[int] | None, default: np.ndarray) -> np.ndarray:
    if values is None:
        return default
    return np.unique(np.asarray(list(values), dtype=np.int64))


def lvis_cap(dets: Detections, max_dets: int) -> np.ndarray:
    """Detections kept by ``LVISResults``: the top ``max_dets`` scores of each image.

    Python's ``sorted(..., reverse=True)`` is stable, so among equal scores the earlier
    detection wins. Returns a boolean mask over ``dets``.
    """
    keep = np.ones(dets.n, dtype=bool)
    if max_dets < 0 or dets.n == 0:
        return keep
    order = np.lexsort((np.arange(dets.n), -dets.score, dets.img))
    img_sorted = dets.img[order]
    starts = np.flatnonzero(np.r_[True, img_sorted[1:] != img_sorted[:-1]])
    counts = np.diff(np.r_[starts, dets.n])
    rank = np.arange(dets.n) - np.repeat(starts, counts)
    keep[order[rank >= max_dets]] = False
    return keep


def make_groups(gt: GroundTruth, dets: Detections, params: EvalParams) -> Groups:
    """Group and order the records as COCOeval.evaluate / LVISEval.evaluate would."""
    p = params
    eval_imgs = _unique_sorted(p.img_ids, gt.img_ids)
    eval_cats = _unique_sorted(p.cat_ids, gt.cat_ids)
    lvis = p.protocol == "lvis"
    if lvis and not p.use_cats:
        raise RemError("LVIS evaluation needs use_cats (lvis-api does not support pooling)")

    # Evaluated image position of each GT image index (-1: not evaluated).
    img_pos_of = np.full(gt.img_ids.size, -1, dtype=np.int64)
    present = np.isin(gt.img_ids, eval_imgs)
    img_pos_of[present] = np.searchsorted(eval_imgs, gt.img_ids[present])
    cat_pos_of = np.full(gt.cat_ids.size, -1, dtype=np.int64)
    cpresent = np.isin(gt.cat_ids, eval_cats)
    cat_pos_of[cpresent] = np.searchsorted(eval_cats, gt.cat_ids[cpresent])

    g_imgpos = img_pos_of[gt.ann_img]
    g_catpos = cat_pos_of[gt.ann_cat]
    g_keep = (g_imgpos >= 0) & (g_catpos >= 0)
    d_cat_ok = dets.cat >= 0
    d_imgpos = img_pos_of[dets.img]
    d_catpos = np.where(d_cat_ok, cat_pos_of[np.maximum(dets.cat, 0)], -1)
    d_keep = (d_imgpos >= 0) & (d_catpos >= 0)

    if lvis:
        # get_ann_ids(area_rng=[0, inf]) keeps only area > 0, for GT and detections alike.
        g_keep &= gt.area > 0
        d_keep &= dets.area > 0
        d_keep &= _federated(gt, dets, g_keep, d_keep)

    num_k = eval_cats.size if p.use_cats else 1
    gi = np.flatnonzero(g_keep)
    di = np.flatnonzero(d_keep)
    g_k = g_catpos[gi] if p.use_cats else np.zeros(gi.size, dtype=np.int64)
    d_k = d_catpos[di] if p.use_cats else np.zeros(di.size, dtype=np.int64)
    g_key = g_imgpos[gi] * num_k + g_k
    d_key = d_imgpos[di] * num_k + d_k
    # Within a pooled image, pycocotools lists records category by category.
    g_order = np.lexsort((gi, g_catpos[gi], g_key))
    d_order = np.lexsort((di, d_catpos[di], -dets.score[di], d_key))
    gi, g_key, g_k = gi[g_order], g_key[g_order], g_k[g_order]
    di, d_key, d_k = di[d_order], d_key[d_order], d_k[d_order]

    keys = np.union1d(g_key, d_key)
    det_start = np.searchsorted(d_key, keys, side="left")
    det_start = np.r_[det_start, d_key.size]
    gt_start = np.r_[np.searchsorted(g_key, keys, side="left"), g_key.size]
    rank = np.arange(di.size) - np.repeat(det_start[:-1], np.diff(det_start))
    if not lvis:
        cut = rank < p.max_dets[-1]
        di, d_key, d_k, rank = di[cut], d_key[cut], d_k[cut], rank[cut]
        det_start = np.r_[np.searchsorted(d_key, keys, side="left"), d_key.size]
    return Groups(
        num_k=num_k,
        eval_cat_ids=eval_cats if p.use_cats else np.array([-1]),
        eval_img_ids=eval_imgs,
        group_img=keys // num_k,
        group_k=keys % num_k,
        det_start=det_start,
        gt_start=gt_start,
        d_idx=di,
        d_rank=rank,
        d_k=d_k,
        d_imgpos=d_key // num_k,
        d_score=dets.score[di],
        g_idx=gi,
        g_k=g_k,
        g_imgpos=g_key // num_k,
    )


def _federated(
    gt: GroundTruth, dets: Detections, g_keep: np.ndarray, d_keep: np.ndarray
) -> np.ndarray:
    """LVIS: keep a detection only if its category is on the image's negative list or has a
    kept GT on the image. Images without ``neg_category_ids`` (COCO-style GT, as
    boundary-iou-api's LVIS variant accepts) are not filtered."""
    ncat = gt.cat_ids.size
    pos = np.zeros(0, dtype=np.int64)
    gi = np.flatnonzero(g_keep)
    if gi.size:
        pos = np.unique(gt.ann_img[gi] * ncat + gt.ann_cat[gi])
    keys = dets.img * ncat + np.maximum(dets.cat, 0)
    ok = np.isin(keys, pos)
    unfiltered = np.array([n is None for n in gt.neg_cats], dtype=bool)
    ok |= unfiltered[dets.img]
    neg_keys = [
        i * ncat + pos_
        for i, neg in enumerate(gt.neg_cats)
        if neg is not None and neg.size
        for pos_ in gt.category_index(neg)[gt.category_index(neg) >= 0].tolist()
    ]
    if neg_keys:
        ok |= np.isin(keys, np.asarray(neg_keys, dtype=np.int64))
    return ok | ~d_keep


def not_exhaustive_mask(gt: GroundTruth, dets: Detections, d_idx: np.ndarray) -> np.ndarray:
    """LVIS: whether each detection's category is on its image's not-exhaustive list."""
    ncat = gt.cat_ids.size
    keys = [
        i * ncat + c
        for i, nel in enumerate(gt.not_exhaustive)
        if nel is not None and nel.size
        for c in gt.category_index(nel)[gt.category_index(nel) >= 0].tolist()
    ]
    if not keys:
        return np.zeros(d_idx.size, dtype=bool)
    dk = dets.img[d_idx] * ncat + dets.cat[d_idx]
    return np.isin(dk, np.asarray(keys, dtype=np.int64))
