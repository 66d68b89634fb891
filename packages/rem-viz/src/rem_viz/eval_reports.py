"""Plots from rem-eval's reports (``rem_core.schemas.EvalReport`` / ``EvalComparison`` JSON).

A report holds, per IoU type, named stats, a per-category table and (when written with arrays)
COCOeval's precision array. This module turns one or more reports into the figures of
:mod:`rem_viz.plots`: precision-recall curves per report, AP against IoU threshold and AP per
category comparing the reports (COCO against COCO-ReM ground truth, or several models).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from rem_core.errors import RemError
from rem_core.io import read_json
from rem_core.schemas.eval_report import EvalComparison, EvalReport, IouTypeMetrics
from rem_viz.images import safe_stem
from rem_viz.plots import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    ap_per_threshold,
    ap_threshold_curves,
    category_ap_bars,
    pr_curves,
    save_figure,
)

_AP_AT = re.compile(r"^AP(\d{2})$")


def _take_arrays(report: dict) -> dict[str, dict[str, np.ndarray]]:
    """Remove the (large) arrays from a raw report dict and return them as numpy arrays.

    Validating a million-float nested list through pydantic costs seconds; the arrays are
    checked for shape by the plots instead.
    """
    taken: dict[str, dict[str, np.ndarray]] = {}
    metrics = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, dict):
        return taken
    for iou_type, m in metrics.items():
        arrays = m.pop("arrays", None) if isinstance(m, dict) else None
        if isinstance(arrays, dict):
            taken[iou_type] = {
                k: np.asarray(v, np.float64) for k, v in arrays.items() if v is not None
            }
    return taken


def load_reports(path: str | Path) -> list[EvalReport]:
    """The reports of an EvalReport or EvalComparison JSON file (arrays held as numpy)."""
    path = Path(path)
    data = read_json(path)
    raw = data.get("reports") if isinstance(data, dict) and "reports" in data else [data]
    arrays = [_take_arrays(r) for r in raw] if isinstance(raw, list) else []
    try:
        if isinstance(data, dict) and "reports" in data:
            reports = list(EvalComparison.model_validate(data).reports)
        else:
            reports = [EvalReport.model_validate(data)]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise RemError(f"not an evaluation report: {err['msg']}", path=path, where=where) from None
    for report, taken in zip(reports, arrays):
        for iou_type, named in taken.items():
            # The schema's in-memory store of arrays (what IouTypeMetrics.array reads first).
            report.metrics[iou_type]._arrays.update(named)
    return reports


def report_labels(reports: Sequence[EvalReport]) -> list[str]:
    """Short names telling reports apart: the ground truth when all share one results file
    (dataset comparison), the results when all share one ground truth (model comparison)."""
    gts = [Path(r.ground_truth).stem for r in reports]
    res = [Path(r.results).stem for r in reports]
    if len(set(res)) == 1 and len(set(gts)) == len(gts):
        labels = gts
    elif len(set(gts)) == 1 and len(set(res)) == len(res):
        labels = res
    else:
        labels = [f"{r} on {g}" for r, g in zip(res, gts)]
    # Make duplicates unique rather than overwrite each other's series.
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def iou_thresholds_of(metrics: IouTypeMetrics, count: int | None = None) -> np.ndarray:
    """The IoU thresholds of a report: its params when recorded, else COCO's ten."""
    thr = metrics.params.get("iou_thrs") if metrics.params else None
    values = np.asarray(thr, np.float64) if thr is not None else COCO_IOU_THRESHOLDS
    if count is not None and values.size != count:
        raise RemError(f"{metrics.iou_type}: {values.size} IoU thresholds for {count} rows")
    return values


def precision_of(metrics: IouTypeMetrics) -> np.ndarray | None:
    """The precision array when the report carries it (in memory or written out)."""
    try:
        return np.asarray(metrics.array("precision"), np.float64)
    except KeyError:
        return None


def ap_by_threshold(metrics: IouTypeMetrics) -> np.ndarray:
    """(10,) AP at .50, .55, ..., .95 (-1 where unknown).

    From the precision array when present (every threshold), else from the named stats
    ``AP50``, ``AP75``, ``AP80``... that the report has.
    """
    precision = precision_of(metrics)
    grid = COCO_IOU_THRESHOLDS
    out = np.full(grid.size, -1.0)
    if precision is not None:
        thr = iou_thresholds_of(metrics, precision.shape[0])
        values = ap_per_threshold(precision)
        for t, v in zip(thr, values):
            k = int(np.argmin(np.abs(grid - t)))
            if abs(grid[k] - t) < 1e-6:
                out[k] = v
        return out
    for name, value in metrics.stats.items():
        m = _AP_AT.match(name)
        if m and value is not None:
            k = int(np.argmin(np.abs(grid - int(m.group(1)) / 100)))
            if abs(grid[k] - int(m.group(1)) / 100) < 1e-6:
                out[k] = value
    return out


def plot_reports(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    iou_types: Sequence[str] | None = None,
    fmt: str = "png",
) -> list[tuple[str, Path]]:
    """Write the plots of the reports in ``paths`` to ``out_dir``; returns (title, path) pairs.

    Per IoU type: ``ap_thresholds_<type>`` (AP against IoU threshold, one line per report),
    ``category_ap_<type>`` (AP per category, one bar per report) and, for each report with a
    precision array, ``pr_<label>_<type>`` (precision-recall curves per IoU threshold).
    """
    reports = [r for p in paths for r in load_reports(p)]
    if not reports:
        raise RemError("no evaluation report to plot")
    names = list(labels) if labels else report_labels(reports)
    if len(names) != len(reports):
        raise RemError(f"{len(names)} labels for {len(reports)} reports", where="--label")
    types = list(iou_types) if iou_types else sorted({t for r in reports for t in r.metrics})
    out = Path(out_dir)
    written: list[tuple[str, Path]] = []
    for iou_type in types:
        having = [(n, r.metrics[iou_type]) for n, r in zip(names, reports) if iou_type in r.metrics]
        if not having:
            raise RemError(
                f"no report has {iou_type!r} metrics; they have "
                f"{', '.join(sorted({t for r in reports for t in r.metrics}))}",
                where="--iou-type",
            )
        curves = {n: ap_by_threshold(m) for n, m in having}
        fig = ap_threshold_curves(curves, title=f"{iou_type} AP at IoU threshold")
        path = save_figure(fig, out / f"ap_thresholds_{iou_type}.{fmt}")
        written.append((f"{iou_type}: AP at IoU threshold", path))
        bars = {
            n: {c.name: (-1.0 if c.ap is None else c.ap) for c in m.per_category}
            for n, m in having
            if m.per_category
        }
        if bars:
            fig = category_ap_bars(
                bars,
                sort="difference" if len(bars) > 1 else "value",
                title=f"{iou_type} AP per category",
            )
            path = save_figure(fig, out / f"category_ap_{iou_type}.{fmt}")
            written.append((f"{iou_type}: AP per category", path))
        for n, m in having:
            precision = precision_of(m)
            if precision is None:
                continue
            rec = m.params.get("rec_thrs") if m.params else None
            fig = pr_curves(
                precision,
                iou_thresholds_of(m, precision.shape[0]),
                COCO_RECALL_THRESHOLDS if rec is None else np.asarray(rec, np.float64),
                title=f"{n}: {iou_type} precision-recall",
            )
            path = save_figure(fig, out / f"pr_{safe_stem(n)}_{iou_type}.{fmt}")
            written.append((f"{n}: {iou_type} precision-recall", path))
    return written
