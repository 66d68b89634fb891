"""``evaluate``: one results file against one ground truth; ``evaluate_many``: against several.

Defaults reproduce the references: pycocotools for segm and bbox, boundary-iou-api for
boundary (GT ``ignore`` OR ``iscrowd``), lvis-api with ``lvis=True``. Departures are opt-in:
``mask_areas`` drops result boxes for mask evaluation as the COCO-ReM evaluator does (otherwise
a results file carrying boxes gets box areas, eval.md §1.2), ``strict_categories`` (on) turns a
detection of an unknown category into an error instead of silently skipping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rem_core.errors import RemError
from rem_core.schemas.eval_report import (
    COCO_STAT_NAMES,
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    IouTypeMetrics,
    MetricArrays,
)
from rem_eval.engine import KindResult, ProtocolResult, run_protocol
from rem_eval.parallel import default_workers, gc_paused
from rem_eval.params import IOU_TYPES, LVIS_MAX_DETS, EvalParams
from rem_eval.summary import (
    coco_reference_stats,
    lvis_freq_groups,
    lvis_reference_stats,
    named_stats,
    per_category_ap,
)
from rem_eval.tables import (
    GroundTruth,
    build_detections,
    detections_from_loaded,
    load_ground_truth,
    read_results,
)
from rem_eval.timing import phase

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
                    frequency=gt.cat_frequency[ci]
                    if gt.cat_frequency[ci] in ("r", "c", "f")
                    else None,
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


@dataclass
class EvalOptions:
    """How to evaluate, beyond the IoU types: protocol, parameter overrides and switches."""

    lvis: bool = False
    params: EvalParams | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    mask_areas: bool = False
    gt_ignore: str | None = None
    strict_categories: bool = True
    workers: int = 1
    arrays: bool = False
    per_category: bool = True


def _ignore_rule(kind: str, opts: EvalOptions) -> str:
    if opts.gt_ignore is not None:
        return opts.gt_ignore
    if opts.lvis:
        return "ignore"
    return "ignore_or_iscrowd" if kind == "boundary" else "iscrowd"


def evaluate_tables(
    gt: GroundTruth,
    raw: list[dict],
    kinds: list[str],
    opts: EvalOptions,
    *,
    results_name: str = "<in-memory>",
    results_path: Any = None,
    loaded: bool = False,
) -> tuple[EvalReport, dict[str, KindResult]]:
    """Evaluate loaded inputs; also returns the per-type internals (for the COCOeval class).

    ``loaded``: ``raw`` holds records already processed by a ``loadRes`` (ids, areas, boxes
    taken as they are) rather than a results file's detections.
    """
    warnings = list(gt.warnings)
    # Box evaluation always keeps result boxes; mask evaluation drops them with mask_areas.
    variants: dict[bool, list[str]] = {}
    for k in kinds:
        variants.setdefault(opts.mask_areas and k != "bbox", []).append(k)
    kind_results: dict[str, KindResult] = {}
    for drop, vkinds in variants.items():
        with phase("detections table"):
            dets = (
                detections_from_loaded(raw, gt)
                if loaded
                else build_detections(
                    raw,
                    gt,
                    source=results_name,
                    path=results_path,
                    protocol="lvis" if opts.lvis else "coco",
                    drop_bbox=drop,
                    strict_categories=opts.strict_categories,
                    need_segm=any(k != "bbox" for k in vkinds),
                )
            )
        warnings.extend(w for w in dets.warnings if w not in warnings)
        pbk = {
            k: make_params(k, lvis=opts.lvis, base=opts.params, **opts.overrides) for k in vkinds
        }
        rules = {k: _ignore_rule(k, opts) for k in vkinds}
        res: ProtocolResult = run_protocol(gt, dets, pbk, ignore_rule=rules, workers=opts.workers)
        warnings.extend(w for w in res.warnings if w not in warnings)
        kind_results.update(res.kinds)
    metrics = {k: _metrics(kind_results[k], gt, opts.arrays, opts.per_category) for k in kinds}
    first = kind_results[kinds[0]]
    report = EvalReport(
        ground_truth=gt.source,
        results=results_name,
        num_images=int(first.groups.eval_img_ids.size),
        num_categories=int(first.groups.eval_cat_ids.size),
        num_ground_truth=int(first.groups.g_idx.size),
        num_detections=len(raw),
        metrics=metrics,
        warnings=warnings,
        created_by=_CREATED_BY,
    )
    return report, kind_results


def _options(
    *,
    lvis: bool,
    params: EvalParams | None,
    iou_thrs: Any,
    rec_thrs: Any,
    max_dets: Any,
    area_rng: Any,
    area_rng_lbl: Any,
    use_cats: bool | None,
    img_ids: Any,
    cat_ids: Any,
    dilation_ratio: float | None,
    mask_areas: bool,
    gt_ignore: str | None,
    strict_categories: bool,
    workers: int | None,
    arrays: bool,
    per_category: bool,
) -> EvalOptions:
    if isinstance(max_dets, int):
        max_dets = [max_dets]
    if gt_ignore not in (None, "iscrowd", "ignore_or_iscrowd", "ignore"):
        raise RemError(f"gt_ignore must be iscrowd, ignore_or_iscrowd or ignore, got {gt_ignore!r}")
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
    return EvalOptions(
        lvis=lvis,
        params=params,
        overrides={k: v for k, v in overrides.items() if v is not None},
        mask_areas=mask_areas,
        gt_ignore=gt_ignore,
        strict_categories=strict_categories,
        workers=default_workers() if workers is None else max(1, int(workers)),
        arrays=arrays,
        per_category=per_category,
    )


def evaluate(
    gt: Any,
    results: Any,
    iou_types: str | Sequence[str] | None = ("segm",),
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
    ``iou_types`` None picks segm when the results carry masks, else bbox.
    ``results``: a path or a list of detection dicts (COCO results format). Parameters default
    to COCOeval's (LVISEval's with ``lvis=True``); any given here override them (``params``
    gives a whole :class:`EvalParams` as the base). ``mask_areas`` drops result boxes for
    mask evaluation (the COCO-ReM evaluator's convention). ``gt_ignore`` overrides the GT
    ignore rule ("iscrowd": pycocotools, "ignore_or_iscrowd": boundary-iou-api, "ignore":
    lvis-api). ``arrays`` also puts the precision / recall / scores arrays into the JSON form
    (in memory they are always at ``report.metrics[t].array(name)``).
    """
    kinds = None if iou_types is None else _iou_types(iou_types)
    opts = _options(
        lvis=lvis,
        params=params,
        iou_thrs=iou_thrs,
        rec_thrs=rec_thrs,
        max_dets=max_dets,
        area_rng=area_rng,
        area_rng_lbl=area_rng_lbl,
        use_cats=use_cats,
        img_ids=img_ids,
        cat_ids=cat_ids,
        dilation_ratio=dilation_ratio,
        mask_areas=mask_areas,
        gt_ignore=gt_ignore,
        strict_categories=strict_categories,
        workers=workers,
        arrays=arrays,
        per_category=per_category,
    )
    with gc_paused():
        with phase("load ground truth"):
            gt_table = load_ground_truth(gt)
        with phase("load results"):
            raw, rname, rpath = read_results(results)
        if kinds is None:
            # segm when the results carry masks, else bbox (judged, like loadRes, by the first).
            first = raw[0] if raw else {}
            kinds = (
                ["bbox"]
                if isinstance(first, dict) and "segmentation" not in first and first
                else ["segm"]
            )
        report, _ = evaluate_tables(
            gt_table, raw, kinds, opts, results_name=rname, results_path=rpath
        )
    return report


def evaluate_many(
    gts: Sequence[Any],
    results: Any,
    iou_types: str | Sequence[str] = ("segm", "boundary"),
    **kwargs: Any,
) -> EvalComparison:
    """Evaluate one results file against several ground truths (e.g. COCO-2017 and COCO-ReM).

    The results file is read once; keyword arguments are those of :func:`evaluate`.
    """
    if not gts:
        raise RemError("give at least one ground truth")
    with gc_paused():
        raw, rname, _ = read_results(results)
    reports = []
    for gt in gts:
        report = evaluate(gt, raw, iou_types, **kwargs)
        report.results = rname
        reports.append(report)
    return EvalComparison(results=rname, reports=reports)


__all__ = [
    "LVIS_MAX_DETS",
    "EvalOptions",
    "evaluate",
    "evaluate_many",
    "evaluate_tables",
    "make_params",
]
