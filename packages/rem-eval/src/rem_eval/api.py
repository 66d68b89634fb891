"""``evaluate``: one results file against one ground truth; ``evaluate_many``: against several.

Defaults reproduce the references: pycocotools for segm and bbox, boundary-iou-api for
boundary (GT ``ignore`` OR ``iscrowd``), lvis-api with ``lvis=True``. Departures are opt-in:
``mask_areas`` drops result boxes for mask evaluation as the COCO-ReM evaluator does (otherwise
a results file carrying boxes gets box areas, eval.md §1.2), ``strict_categories`` (on) turns a
detection of an unknown category into an error instead of silently skipping it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rem_core.errors import RemError
from rem_core.schemas.eval_report import (
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    IouTypeMetrics,
    MetricArrays,
)
from rem_eval.engine import KindResult, ProtocolResult, run_protocol
from rem_eval.parallel import default_workers
from rem_eval.params import IOU_TYPES, LVIS_MAX_DETS, EvalParams
from rem_eval.summary import (
    COCO_STAT_NAMES,
    coco_reference_stats,
    lvis_freq_groups,
    lvis_reference_stats,
    named_stats,
    per_category_ap,
)
from rem_eval.tables import (
    GroundTruth,
    build_detections,
    load_ground_truth,
    read_results,
)

try:
    from importlib.metadata import version as _version

    _CREATED_BY = f"rem-eval {_version('rem-eval')}"
except Exception:  # not installed (source tree)
    _CREATED_BY = "rem-eval"


def _iou_types(iou_types: str | Iterable[str]) -> list[str]:
    kinds = [iou_types] if isinstance(iou_types, str) else list(iou_types)
    out: list[str] = []
    for k in kinds:
        if k not in IOU_TYPES:
            raise RemError(f"unknown IoU type {k!r}; choose from {', '.join(IOU_TYPES)}")
        if k not in out:
            out.append(k)
    if not out:
        raise RemError("no IoU type given")
    return out


def make_params(
    iou_type: str,
    *,
    lvis: bool = False,
    base: EvalParams | None = None,
    **overrides: Any,
) -> EvalParams:
    """EvalParams for one IoU type from a base (or the protocol defaults) and overrides."""
    if base is not None:
        from dataclasses import replace

        p = replace(base, iou_type=iou_type, protocol="lvis" if lvis else base.protocol)
    else:
        p = EvalParams.lvis(iou_type) if lvis else EvalParams(iou_type=iou_type)  # type: ignore[arg-type]
    for key, value in overrides.items():
        if value is not None:
            setattr(p, key, value)
    return p.normalized()


def _metrics(
    kr: KindResult, gt: GroundTruth, arrays: bool, include_per_category: bool
) -> IouTypeMetrics:
    p = kr.params
    lvis = p.protocol == "lvis"
    precision, recall, scores = kr.acc.precision, kr.acc.recall, kr.acc.scores
    if lvis:
        precision, recall = precision[..., 0], recall[..., 0]
    cat_index = gt.category_index(kr.groups.eval_cat_ids) if p.use_cats else None
    if lvis:
        freq = [gt.cat_frequency[i] for i in cat_index]  # type: ignore[union-attr]
        ref = lvis_reference_stats(precision, recall, p, lvis_freq_groups(freq))
        ref_names, ref_vals = list(ref), [float(v) for v in ref.values()]
    else:
        ref_vals = coco_reference_stats(precision, recall, p)
        ref_names = list(COCO_STAT_NAMES)
    stats = named_stats(precision, recall, p, lvis=lvis)
    if lvis:
        for key in ("APr", "APc", "APf"):
            stats[key] = None if ref[key] == -1 else float(ref[key])
    per_cat: list[CategoryMetrics] = []
    if include_per_category and cat_index is not None:
        pc = per_category_ap(precision, p, lvis=lvis)
        a_all = ([i for i, a in enumerate(p.area_rng_lbl) if a == "all"] or [0])[0]
        for k, ci in enumerate(cat_index.tolist()):
            per_cat.append(
                CategoryMetrics(
                    id=int(gt.cat_ids[ci]),
                    name=gt.cat_names[ci],
                    ap=pc["ap"][k],
                    ap50=pc["ap50"][k],
                    ap75=pc["ap75"][k],
                    num_gt=int(kr.npig[k, a_all]),
                    num_det=int(kr.num_det_per_k[k]),
                    frequency=gt.cat_frequency[ci] if gt.cat_frequency[ci] in ("r", "c", "f") else None,
                )
            )
    params = p.to_dict()
    params["num_images"] = int(kr.groups.eval_img_ids.size)
    params["num_categories"] = int(kr.groups.eval_cat_ids.size)
    m = IouTypeMetrics(
        iou_type=p.iou_type,
        protocol=p.protocol,
        stats=stats,
        reference_stats=ref_vals,
        reference_stat_names=ref_names,
        per_category=per_cat,
        params=params,
        arrays=(
            MetricArrays(
                precision=precision.tolist(),
                recall=recall.tolist(),
                scores=None if lvis else scores.tolist(),
            )
            if arrays
            else None
        ),
        seconds=round(kr.seconds, 4),
    )
    m._arrays = {"precision": precision, "recall": recall}
    if not lvis:
        m._arrays["scores"] = scores
    return m


def _evaluate_loaded(
    gt: GroundTruth,
    raw: list[dict],
    rname: str,
    rpath: Any,
    kinds: list[str],
    *,
    lvis: bool,
    params: EvalParams | None,
    overrides: dict[str, Any],
    mask_areas: bool,
    gt_ignore: str | None,
    strict_categories: bool,
    workers: int,
    arrays: bool,
    per_category: bool,
) -> tuple[EvalReport, dict[str, KindResult]]:
    t0 = time.perf_counter()
    warnings = list(gt.warnings)
    # Box evaluation always keeps result boxes; mask evaluation drops them with mask_areas.
    variants: dict[bool, list[str]] = {}
    for k in kinds:
        variants.setdefault(mask_areas and k != "bbox", []).append(k)
    kind_results: dict[str, KindResult] = {}
    metrics: dict[str, IouTypeMetrics] = {}
    for drop, vkinds in variants.items():
        dets = build_detections(
            raw,
            gt,
            source=rname,
            path=rpath,
            protocol="lvis" if lvis else "coco",
            drop_bbox=drop,
            strict_categories=strict_categories,
            need_segm=any(k != "bbox" for k in vkinds),
        )
        for w in dets.warnings:
            if w not in warnings:
                warnings.append(w)
        pbk = {k: make_params(k, lvis=lvis, base=params, **overrides) for k in vkinds}
        rule = {}
        for k in vkinds:
            if gt_ignore is not None:
                rule[k] = gt_ignore
            elif lvis:
                rule[k] = "ignore"
            else:
                rule[k] = "ignore_or_iscrowd" if k == "boundary" else "iscrowd"
        res: ProtocolResult = run_protocol(gt, dets, pbk, ignore_rule=rule, workers=workers)
        warnings.extend(w for w in res.warnings if w not in warnings)
        kind_results.update(res.kinds)
    for k in kinds:
        metrics[k] = _metrics(kind_results[k], gt, arrays, per_category)
    any_kr = kind_results[kinds[0]]
    report = EvalReport(
        ground_truth=gt.source,
        results=rname,
        num_images=int(any_kr.groups.eval_img_ids.size),
        num_categories=int(gt.cat_ids.size),
        num_ground_truth=int(any_kr.groups.g_idx.size),
        num_detections=len(raw),
        metrics=metrics,
        warnings=warnings,
        created_by=_CREATED_BY,
    )
    _ = time.perf_counter() - t0
    return report, kind_results


def evaluate(
    gt: Any,
    results: Any,
    iou_types: str | Sequence[str] = ("segm",),
    *,
    lvis: bool = False,
    params: EvalParams | None = None,
    iou_thrs: Sequence[float] | np.ndarray | None = None,
    rec_thrs: Sequence[float] | np.ndarray | None = None,
    max_dets: Sequence[int] | int | None = None,
    area_rng: Sequence[Sequence[float]] | None = None,
    area_rng_lbl: Sequence[str] | None = None,
    use_cats: bool | None = None,
    img_ids: Sequence[int] | None = None,
    cat_ids: Sequence[int] | None = None,
    dilation_ratio: float | None = None,
    mask_areas: bool = False,
    gt_ignore: str | None = None,
    strict_categories: bool = True,
    workers: int | None = None,
    arrays: bool = False,
    per_category: bool = True,
) -> EvalReport:
    """Evaluate ``results`` against ``gt`` for each IoU type ("segm", "bbox", "boundary").

    ``gt``: a path, dataset name, COCO dict, CocoFile or pycocotools-style COCO object.
    ``results``: a path or a list of detection dicts (COCO results format). Parameters default
    to COCOeval's (LVISEval's with ``lvis=True``); any given here override them. ``arrays``
    puts the precision / recall / scores arrays into the JSON form of the report as well (they
    are always available as NumPy arrays through ``report.metrics[t].array(name)``).
    """
    kinds = _iou_types(iou_types)
    gt_table = load_ground_truth(gt)
    raw, rname, rpath = read_results(results)
    if isinstance(max_dets, int):
        max_dets = [max_dets]
    overrides = {
        "iou_thrs": None if iou_thrs is None else np.asarray(iou_thrs, dtype=np.float64),
        "rec_thrs": None if rec_thrs is None else np.asarray(rec_thrs, dtype=np.float64),
        "max_dets": None if max_dets is None else list(max_dets),
        "area_rng": None if area_rng is None else [list(r) for r in area_rng],
        "area_rng_lbl": None if area_rng_lbl is None else list(area_rng_lbl),
        "use_cats": use_cats,
        "img_ids": None if img_ids is None else list(img_ids),
        "cat_ids": None if cat_ids is None else list(cat_ids),
        "dilation_ratio": dilation_ratio,
    }
    report, _ = _evaluate_loaded(
        gt_table,
        raw,
        rname,
        rpath,
        kinds,
        lvis=lvis,
        params=params,
        overrides=overrides,
        mask_areas=mask_areas,
        gt_ignore=gt_ignore,
        strict_categories=strict_categories,
        workers=default_workers() if workers is None else workers,
        arrays=arrays,
        per_category=per_category,
    )
    return report


def evaluate_many(
    gts: Sequence[Any],
    results: Any,
    iou_types: str | Sequence[str] = ("segm", "boundary"),
    **kwargs: Any,
) -> EvalComparison:
    """Evaluate one results file against several ground truths (e.g. COCO-2017 and COCO-ReM).

    The results are read once; keyword arguments are those of :func:`evaluate`.
    """
    if not gts:
        raise RemError("give at least one ground truth")
    raw, rname, rpath = read_results(results)
    reports = [evaluate(gt, raw, iou_types, **kwargs) for gt in gts]
    for r in reports:
        r.results = rname
    return EvalComparison(results=rname, reports=reports)


__all__ = ["LVIS_MAX_DETS", "evaluate", "evaluate_many", "make_params"]
