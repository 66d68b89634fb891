"""PASCAL VOC-style instance-segmentation AP (the devkit's rules over mask IoU).

Weakly supervised instance segmentation papers report mAP at IoU 0.25 / 0.5 / 0.7 / 0.75 on
VOC 2012 val. Per class, detections are ranked by score (stable for ties) and each takes the
ground truth of its image and class with the highest mask IoU (the first on ties), whether that
one is already matched or not: IoU strictly above the threshold with a free instance is a true
positive, with a matched one a duplicate (false positive); IoU at or below it a false positive.
Detections whose best instance is ignored (VOC's ``difficult``; here ``iscrowd`` and/or
``ignore``, see ``gt_ignore``) count as neither, and ignored instances are not in the recall
denominator. AP is the area under the monotone precision envelope (VOC2010+ devkit), or the
mean of the best precision at recall >= 0, 0.1, ..., 1 (``use_07_metric``, VOC2007). There is no
per-image detection cap and no area range. A class without countable ground truth has no AP
and is left out of the mean.

This is not what pycocotools gives at those thresholds (101-point interpolation, IoU >= the
threshold, 100 detections per image and class, crowd I/|D|), which some papers use instead:
``rem eval --iou-thrs 0.25,0.5,0.7,0.75`` computes that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_core.schemas.eval_report import (
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    IouTypeMetrics,
)
from rem_eval.api import _CREATED_BY
from rem_eval.geometry import to_coco_rle
from rem_eval.summary import threshold_key
from rem_eval.tables import (
    Detections,
    GroundTruth,
    build_detections,
    load_ground_truth,
    read_results,
)

VOC_IOU_THRS: tuple[float, ...] = (0.25, 0.5, 0.7, 0.75)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP of a ranked list from its cumulative recall and precision (same length)."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if use_07_metric:
        points = [
            float(precision[recall >= t].max()) if np.any(recall >= t) else 0.0
            for t in np.linspace(0, 1, 11)
        ]
        return float(np.mean(points))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def best_matches(
    gt: GroundTruth, dets: Detections, path: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's highest mask IoU with a GT instance of its image and class, and that
    instance's row (-1 and 0.0 when the image has none of the class). ``path``: the results
    file, named in errors."""
    best_iou = np.zeros(dets.n)
    best_row = np.full(dets.n, -1, dtype=np.int64)
    gt_rles: dict[int, dict] = {}
    keys = gt.ann_img.astype(np.int64) * (gt.cat_ids.size + 1) + gt.ann_cat
    gt_order = np.argsort(keys, kind="stable")
    gt_keys = keys[gt_order]
    known = np.flatnonzero(dets.cat >= 0)  # unknown categories (skipped) match nothing
    if known.size == 0:
        return best_iou, best_row
    det_keys = dets.img[known].astype(np.int64) * (gt.cat_ids.size + 1) + dets.cat[known]
    det_order = np.argsort(det_keys, kind="stable")
    groups, starts = np.unique(det_keys[det_order], return_index=True)
    for key, d_idx in zip(groups.tolist(), np.split(known[det_order], starts[1:]), strict=True):
        rows = gt_order[np.searchsorted(gt_keys, key) : np.searchsorted(gt_keys, key, "right")]
        if rows.size == 0:
            continue
        img = int(dets.img[d_idx[0]])
        h, w = int(gt.heights[img]), int(gt.widths[img])
        for r in rows.tolist():
            if r not in gt_rles:
                where = f"annotations[{gt.ann_where[r]}].segmentation"
                gt_rles[r] = _rle(gt.segm[r], h, w, gt.path, where)
        dt = [
            _rle(dets.segm[i], h, w, path, f"[{dets.where[i]}].segmentation")  # type: ignore[index]
            for i in d_idx.tolist()
        ]
        ious = np.asarray(
            mask_utils.iou(dt, [gt_rles[r] for r in rows.tolist()], [0] * rows.size)
        ).reshape(d_idx.size, rows.size)
        j = ious.argmax(axis=1)
        best_iou[d_idx] = ious[np.arange(d_idx.size), j]
        best_row[d_idx] = rows[j]
    return best_iou, best_row


def _rle(segm: Any, h: int, w: int, path: Path | None, where: str) -> dict:
    try:
        return to_coco_rle(segm, h, w)[0]
    except RemError as exc:
        raise RemError(exc.detail, path=path, where=where) from None


def class_ap(
    score: np.ndarray,
    best_iou: np.ndarray,
    best_row: np.ndarray,
    ignored: np.ndarray,
    num_gt: int,
    iou_thr: float,
    use_07_metric: bool = False,
) -> float | None:
    """AP of one class's detections (``score``, best IoU and row; ``ignored`` by GT row)."""
    if num_gt == 0:
        return None
    order = np.argsort(-score, kind="stable")
    iou, row = best_iou[order], best_row[order]
    hit = (iou > iou_thr) & (row >= 0)
    keep = ~(hit & ignored[np.maximum(row, 0)])
    hit, row = hit[keep], row[keep]
    tp = np.zeros(hit.size, dtype=bool)
    hits = np.flatnonzero(hit)
    _, first = np.unique(row[hits], return_index=True)  # later hits on one instance: duplicates
    tp[hits[first]] = True
    ctp = np.cumsum(tp, dtype=np.float64)
    cfp = np.cumsum(~tp, dtype=np.float64)
    if ctp.size == 0:
        return 0.0
    return voc_ap(ctp / num_gt, ctp / (ctp + cfp), use_07_metric)


def _gt_ignored(gt: GroundTruth, rule: str) -> np.ndarray:
    if rule == "iscrowd":
        return gt.iscrowd.astype(bool)
    if rule == "ignore":
        return gt.ignore.astype(bool)
    if rule == "ignore_or_iscrowd":
        return gt.iscrowd.astype(bool) | gt.ignore.astype(bool)
    raise RemError(f"gt_ignore must be iscrowd, ignore_or_iscrowd or ignore, got {rule!r}")


def evaluate_voc(
    gt: Any,
    results: Any,
    iou_thrs: Sequence[float] = VOC_IOU_THRS,
    *,
    use_07_metric: bool = False,
    gt_ignore: str = "ignore_or_iscrowd",
    strict_categories: bool = True,
    per_category: bool = True,
) -> EvalReport:
    """VOC mask AP of ``results`` against ``gt`` at each of ``iou_thrs`` (see the module doc).

    ``gt`` / ``results`` are what :func:`rem_eval.evaluate` takes. The report's
    ``metrics["segm"]`` has protocol ``voc`` and ``stats`` named by threshold (``AP25``,
    ``AP50``...: the mean over classes, i.e. the papers' mAP25, mAP50...).
    """
    thrs = [float(t) for t in iou_thrs]
    if not thrs or any(not 0.0 <= t < 1.0 for t in thrs):
        raise RemError(f"VOC IoU thresholds must lie in [0, 1), got {thrs}")
    table = load_ground_truth(gt)
    raw, name, path = read_results(results)
    dets = build_detections(
        raw, table, source=name, path=path, drop_bbox=True, strict_categories=strict_categories
    )
    ignored = _gt_ignored(table, gt_ignore)
    best_iou, best_row = best_matches(table, dets, path)
    keys = [threshold_key(t) for t in thrs]
    aps = np.full((len(thrs), table.cat_ids.size), np.nan)
    per_cat: list[CategoryMetrics] = []
    for k in range(table.cat_ids.size):
        mine = np.flatnonzero(dets.cat == k)
        num_gt = int(np.count_nonzero((table.ann_cat == k) & ~ignored))
        for t, thr in enumerate(thrs):
            args = (best_iou[mine], best_row[mine], ignored, num_gt, thr, use_07_metric)
            ap = class_ap(dets.score[mine], *args)
            aps[t, k] = np.nan if ap is None else ap
        if per_category:
            ap_at = {key: _value(aps[t, k]) for t, key in enumerate(keys)}
            per_cat.append(
                CategoryMetrics(
                    id=int(table.cat_ids[k]),
                    name=table.cat_names[k],
                    ap=None,
                    ap50=ap_at.get("AP50"),
                    ap75=ap_at.get("AP75"),
                    num_gt=num_gt,
                    num_det=int(mine.size),
                    ap_at=ap_at,
                )
            )
    means = [_value(np.nanmean(row)) if np.isfinite(row).any() else None for row in aps]
    params = {
        "iou_type": "segm",
        "protocol": "voc",
        "iou_thrs": thrs,
        "use_07_metric": use_07_metric,
        "gt_ignore": gt_ignore,
        "num_images": int(table.img_ids.size),
        "num_categories": int(table.cat_ids.size),
    }
    metrics = IouTypeMetrics(
        iou_type="segm",
        protocol="voc",
        stats=dict(zip(keys, means, strict=True)),
        reference_stats=[-1.0 if m is None else m for m in means],
        reference_stat_names=keys,
        per_category=per_cat,
        params=params,
    )
    return EvalReport(
        ground_truth=table.source,
        results=name,
        num_images=int(table.img_ids.size),
        num_categories=int(table.cat_ids.size),
        num_ground_truth=table.num_annotations,
        num_detections=len(raw),
        metrics={"segm": metrics},
        warnings=list(table.warnings) + [w for w in dets.warnings if w not in table.warnings],
        created_by=_CREATED_BY,
    )


def evaluate_voc_many(
    gts: Sequence[Any], results: Any, iou_thrs: Sequence[float] = VOC_IOU_THRS, **kwargs: Any
) -> EvalComparison:
    """:func:`evaluate_voc` of one results file (read once) against several ground truths."""
    if not gts:
        raise RemError("give at least one ground truth")
    raw, name, _ = read_results(results)
    reports = []
    for gt in gts:
        report = evaluate_voc(gt, raw, iou_thrs, **kwargs)
        report.results = name
        reports.append(report)
    return EvalComparison(results=name, reports=reports)


def _value(v: float) -> float | None:
    return None if np.isnan(v) else float(v)
