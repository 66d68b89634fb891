"""The evaluation pipeline: load, group, IoU, match, accumulate, summarize.

:func:`run_protocol` evaluates one set of detections against one ground truth for one or more
IoU types that share the same detections, computing the mask IoUs once for ``segm`` and
``boundary``. The public entry point is :func:`rem_eval.api.evaluate`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_eval.accumulate import Accumulated, accumulate
from rem_eval.geometry import rle_areas, to_coco_rle
from rem_eval.grouping import Groups, lvis_cap, make_groups, not_exhaustive_mask
from rem_eval.matching import Matches, det_outcomes, match
from rem_eval.pairs import PairJob, PairSet, compute_pairs
from rem_eval.parallel import run_tasks
from rem_eval.params import EvalParams
from rem_eval.tables import Detections, GroundTruth
from rem_eval.timing import phase


@dataclass
class KindResult:
    """Everything computed for one IoU type; kept for the COCOeval-compatible class."""

    iou_type: str
    params: EvalParams
    groups: Groups
    pairs: PairSet
    matches: Matches
    gt_ignore: np.ndarray
    det_area: np.ndarray
    npig: np.ndarray
    acc: Accumulated
    num_det_per_k: np.ndarray
    seconds: float
    dets: Detections


@dataclass
class ProtocolResult:
    kinds: dict[str, KindResult]
    dets: Detections
    warnings: list[str] = field(default_factory=list)


def _img_hw(gt: GroundTruth, eval_img_ids: np.ndarray) -> np.ndarray:
    idx = gt.image_index(eval_img_ids)
    hw = np.zeros((eval_img_ids.size, 2), dtype=np.int64)
    ok = idx >= 0
    hw[ok, 0] = gt.heights[idx[ok]]
    hw[ok, 1] = gt.widths[idx[ok]]
    return hw


def _det_areas_task(state: tuple, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask areas and boxes of detections i0..i1-1, converting non-compressed masks."""
    dets, gt = state
    rles = dets.segm[i0:i1]
    if not dets.compressed:
        rles = list(rles)
        for j, segm in enumerate(rles):
            if isinstance(segm, dict) and isinstance(segm.get("counts"), str | bytes):
                continue
            i = i0 + j
            img = dets.img[i]
            try:
                rles[j], _ = to_coco_rle(segm, int(gt.heights[img]), int(gt.widths[img]))
            except RemError as exc:
                raise RemError(
                    exc.detail, path=dets.source, where=f"[{dets.where[i]}].segmentation"
                ) from None
    if not rles:
        return np.zeros(0), np.zeros((0, 4))
    return (
        rle_areas(rles),
        np.asarray(mask_utils.toBbox(rles), dtype=np.float64).reshape(-1, 4),
    )


def fill_mask_areas(dets: Detections, gt: GroundTruth, workers: int) -> None:
    """Set mask areas (and missing boxes) of all detections, in parallel chunks."""
    n = dets.n
    if n == 0:
        return
    n_chunks = 1 if n < 20_000 or workers <= 1 else workers * 4
    edges = np.linspace(0, n, n_chunks + 1).astype(int)
    tasks = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
    out = run_tasks(_det_areas_task, (dets, gt), tasks, workers if n_chunks > 1 else 1)
    dets.area = np.concatenate([a for a, _ in out])
    boxes = np.concatenate([b for _, b in out])
    missing = np.isnan(dets.bbox).any(axis=1)
    dets.bbox[missing] = boxes[missing]


def fill_gt_geometry(gt: GroundTruth, need_box: bool) -> None:
    """Missing GT areas (and boxes, for box IoU) from the masks; the references would crash."""
    miss_area = np.flatnonzero(np.isnan(gt.area))
    miss_box = np.flatnonzero(np.isnan(gt.bbox).any(axis=1)) if need_box else np.zeros(0, int)
    for j in np.union1d(miss_area, miss_box).tolist():
        img = gt.ann_img[j]
        try:
            rle, _ = to_coco_rle(gt.segm[j], int(gt.heights[img]), int(gt.widths[img]))
        except RemError as exc:
            if np.isnan(gt.area[j]) or need_box:
                raise RemError(
                    f"annotation has no area / bbox and no usable segmentation ({exc.detail})",
                    path=gt.path,
                    where=f"annotations[{gt.ann_where[j]}]",
                ) from None
            continue
        if np.isnan(gt.area[j]):
            gt.area[j] = float(mask_utils.area(rle))
        if need_box and np.isnan(gt.bbox[j]).any():
            gt.bbox[j] = np.asarray(mask_utils.toBbox(rle), dtype=np.float64)


def gt_ignore_flags(
    gt: GroundTruth, g_idx: np.ndarray, params: EvalParams, rule: str
) -> np.ndarray:
    """(num GT, A) ignore flags: the base flag OR the area outside the (inclusive) range.

    ``rule``: ``"iscrowd"`` (pycocotools overwrites ``ignore`` with ``iscrowd``),
    ``"ignore_or_iscrowd"`` (boundary-iou-api) or ``"ignore"`` (lvis-api; no crowd).
    """
    if rule == "iscrowd":
        base = gt.iscrowd[g_idx]
    elif rule == "ignore_or_iscrowd":
        base = gt.iscrowd[g_idx] | gt.ignore[g_idx]
    elif rule == "ignore":
        base = gt.ignore[g_idx]
    else:
        raise RemError(f"unknown GT ignore rule {rule!r}")
    area = gt.area[g_idx]
    rng = np.asarray(params.area_rng, dtype=np.float64)
    out_of = (area[:, None] < rng[None, :, 0]) | (area[:, None] > rng[None, :, 1])
    return base[:, None] | out_of


def run_protocol(
    gt: GroundTruth,
    dets: Detections,
    params_by_kind: dict[str, EvalParams],
    *,
    ignore_rule: dict[str, str],
    workers: int,
) -> ProtocolResult:
    """Evaluate ``dets`` for every IoU type in ``params_by_kind`` (same protocol and same
    image / category / maxDets selection for all, so that they share groups and mask IoUs)."""
    kinds = list(params_by_kind)
    p0 = next(iter(params_by_kind.values()))
    lvis = p0.protocol == "lvis"
    warnings: list[str] = []
    t0 = time.perf_counter()
    need_box = "bbox" in kinds
    fill_gt_geometry(gt, need_box)
    if lvis:
        keep = lvis_cap(dets, p0.max_dets[-1])
        if not keep.all():
            dets = dets.subset(keep)
        if dets.branch == "segm" or need_box:
            with phase("mask areas and boxes"):
                fill_mask_areas(dets, gt, workers)
    # (COCO: boxes missing from mask results are the mask boxes, computed with the pairs.)
    with phase("group"):
        groups = make_groups(gt, dets, p0)
    img_hw = _img_hw(gt, groups.eval_img_ids)
    tmin = min(float(np.min(np.minimum(p.iou_thrs, 1 - 1e-10))) for p in params_by_kind.values())
    gt_crowd = np.zeros(groups.g_idx.size, bool) if lvis else gt.iscrowd[groups.g_idx].astype(bool)
    want_area = dets.branch == "segm" and bool(np.isnan(dets.area[groups.d_idx]).any())
    job = PairJob(
        gt=gt,
        dets=dets,
        groups=groups,
        kinds=tuple(kinds),
        tmin=tmin,
        want_area=want_area,
        dilation_ratio=p0.dilation_ratio,
        img_hw=img_hw,
        gt_box=gt.bbox[groups.g_idx] if need_box else None,
        det_box=dets.bbox[groups.d_idx] if need_box else None,
        gt_crowd=gt_crowd,
        dets_compressed=dets.compressed,
    )
    if need_box and dets.branch != "segm" and np.isnan(job.det_box).any():  # type: ignore[union-attr]
        raise RemError("some detections have neither a box nor a mask to take it from")
    with phase("pairs " + "+".join(kinds)):
        out = compute_pairs(job, workers)
    if out.repaired:
        warnings.append(
            f"{len(out.repaired)} GT segmentations had unusable polygons (pycocotools would "
            f"crash); they were dropped, first: annotations[{out.repaired[0]}]"
        )
    det_area = out.det_area if want_area else dets.area[groups.d_idx]
    shared_seconds = time.perf_counter() - t0

    results: dict[str, KindResult] = {}
    g_pos = np.arange(groups.g_idx.size) - np.repeat(groups.gt_start[:-1], np.diff(groups.gt_start))
    gt_id_zero = gt.ann_ids[groups.g_idx] == 0
    nel = not_exhaustive_mask(gt, dets, groups.d_idx) if lvis else None
    for kind in kinds:
        t1 = time.perf_counter()
        p = params_by_kind[kind]
        g_ig = gt_ignore_flags(gt, groups.g_idx, p, ignore_rule[kind])
        rng = np.asarray(p.area_rng, dtype=np.float64)
        unm_ig = (det_area[:, None] < rng[None, :, 0]) | (det_area[:, None] > rng[None, :, 1])
        if nel is not None:
            unm_ig |= nel[:, None]
        with phase(f"match {kind}"):
            matches = match(
                out.pairs[kind],
                groups.d_rank,
                g_pos,
                g_ig,
                gt_crowd,
                p.iou_thrs,
                crowd_reusable=not lvis,
            )
            cand, cand_tp, cand_fp = det_outcomes(
                groups.d_idx.size, matches, g_ig, gt_id_zero, unm_ig, p.iou_thrs.size
            )
        K = groups.num_k
        npig = np.zeros((K, rng.shape[0]), dtype=np.int64)
        for a in range(rng.shape[0]):
            npig[:, a] = np.bincount(groups.g_k[~g_ig[:, a]], minlength=K)
        with phase(f"accumulate {kind}"):
            acc = accumulate(
                cand,
                cand_tp,
                cand_fp,
                ~unm_ig.T,
                groups.d_k,
                groups.d_score,
                groups.d_imgpos,
                groups.d_rank,
                npig,
                p.rec_thrs,
                None if lvis else p.max_dets,
            )
        results[kind] = KindResult(
            iou_type=kind,
            params=p,
            groups=groups,
            pairs=out.pairs[kind],
            matches=matches,
            gt_ignore=g_ig,
            det_area=det_area,
            npig=npig,
            acc=acc,
            num_det_per_k=np.bincount(groups.d_k, minlength=K),
            seconds=shared_seconds + time.perf_counter() - t1,
            dets=dets,
        )
    return ProtocolResult(results, dets, warnings)
