"""PASCAL VOC instance-segmentation mAP (mAP50 / mAP75 over mask IoU), as WSIS papers report it.

Per class, detections are ranked by score and greedily matched to the not-yet-matched ground
truth of their image with the highest mask IoU; IoU above the threshold with a free instance is a
true positive, with an instance already taken (or below the threshold) a false positive; matches
to ``iscrowd`` / ``difficult`` instances are neither. AP is the area under the monotone precision
envelope (VOC2010+), or the 11-point mean with ``use_07_metric``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from rem_core import masks as mask_ops
from rem_core.io import CocoFile


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a ranked list's cumulative recall and precision (same length)."""
    if use_07_metric:
        points = [
            float(np.max(precision[recall >= t])) if np.any(recall >= t) else 0.0
            for t in np.linspace(0, 1, 11)
        ]
        return float(np.mean(points))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _ignored(ann: dict) -> bool:
    return bool(ann.get("iscrowd", 0) or ann.get("difficult", 0))


def class_ap(
    gt_by_image: dict[int, list[dict]],
    dets: list[dict],
    sizes: dict[int, tuple[int, int]],
    iou_thr: float,
    use_07_metric: bool = False,
) -> float | None:
    """AP of one class; None when the class has no countable ground truth."""
    npos = sum(not _ignored(a) for anns in gt_by_image.values() for a in anns)
    if npos == 0:
        return None
    order = sorted(range(len(dets)), key=lambda i: -dets[i]["score"])
    taken = {img: np.zeros(len(anns), dtype=bool) for img, anns in gt_by_image.items()}
    tp, fp = [], []
    for i in order:
        det = dets[i]
        anns = gt_by_image.get(det["image_id"], [])
        if not anns:
            tp.append(0)
            fp.append(1)
            continue
        h, w = sizes[det["image_id"]]
        gts = [mask_ops.to_rle(a["segmentation"], h, w) for a in anns]
        dt = mask_ops.to_rle(det["segmentation"], h, w)
        ious = mask_ops.iou([dt], gts, [0] * len(gts))[0]
        j = int(np.argmax(ious))
        if ious[j] > iou_thr:
            if _ignored(anns[j]):
                continue
            if not taken[det["image_id"]][j]:
                taken[det["image_id"]][j] = True
                tp.append(1)
                fp.append(0)
                continue
        tp.append(0)
        fp.append(1)
    ctp, cfp = np.cumsum(tp, dtype=np.float64), np.cumsum(fp, dtype=np.float64)
    recall = ctp / npos
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return voc_ap(recall, precision, use_07_metric)


def voc_mask_map(
    coco: CocoFile,
    results: Sequence[dict],
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    use_07_metric: bool = False,
) -> dict[str, object]:
    """``{"mAP50": ..., "mAP75": ..., "per_class": {cat_id: {"AP50": ...}}}`` (keys follow the
    thresholds, x100 rounded names); the mean is over classes with ground truth."""
    sizes = {i: (img["height"], img["width"]) for i, img in coco.imgs.items()}
    gt: dict[int, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for ann in coco.anns.values():
        gt[ann["category_id"]][ann["image_id"]].append(ann)
    dets: dict[int, list[dict]] = defaultdict(list)
    for det in results:
        if det["image_id"] in sizes:
            dets[det["category_id"]].append(det)
    out: dict[str, object] = {}
    per_class: dict[int, dict[str, float]] = {}
    for thr in iou_thresholds:
        name = f"AP{round(thr * 100)}"
        aps = []
        for cat in sorted(coco.cats):
            ap = class_ap(gt.get(cat, {}), dets.get(cat, []), sizes, thr, use_07_metric)
            if ap is not None:
                per_class.setdefault(cat, {})[name] = ap
                aps.append(ap)
        out[f"m{name}"] = float(np.mean(aps)) if aps else float("nan")
    out["per_class"] = per_class
    return out
