"""Evaluation plots: precision-recall curves, AP per IoU threshold, AP per category.

Functions take plain arrays in COCOeval's layout and return :class:`matplotlib.figure.Figure`
objects (made without pyplot, so they work headless, in notebooks and in worker processes).
``precision`` is T x R x K x A x M (IoU thresholds, recall thresholds, categories, area ranges,
max-detection settings; LVIS's T x R x K x A is accepted too) with -1 where a value is undefined.
AP values passed in are fractions (0..1); the plots show percent.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rem_core.atomic import atomic_write_bytes

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def _as_5d(precision: np.ndarray) -> np.ndarray:
    p = np.asarray(precision, np.float64)
    if p.ndim == 4:  # LVIS has no max-detections axis
        p = p[..., None]
    if p.ndim != 5:
        raise ValueError(f"precision must be T x R x K x A [x M], got shape {p.shape}")
    return p


def _masked_mean(values: np.ndarray, axis) -> np.ndarray:
    """Mean over ``axis`` of the entries > -1 (COCOeval's summarize rule); -1 where none."""
    valid = values > -1
    count = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def ap_per_threshold(precision: np.ndarray, area: int = 0, max_dets: int = -1) -> np.ndarray:
    """(T,) AP at each IoU threshold: mean precision over recall thresholds and categories."""
    p = _as_5d(precision)[:, :, :, area, max_dets]
    return _masked_mean(p.reshape(p.shape[0], -1), axis=1)


def ap_per_category(precision: np.ndarray, area: int = 0, max_dets: int = -1) -> np.ndarray:
    """(K,) AP@[.50:.95] of each category (COCO-ReM's ``AP-{class}``), -1 where undefined."""
    p = _as_5d(precision)[:, :, :, area, max_dets]
    return _masked_mean(np.moveaxis(p, 2, 0).reshape(p.shape[2], -1), axis=1)


def precision_at_recall(
    precision: np.ndarray, category: int | None = None, area: int = 0, max_dets: int = -1
) -> np.ndarray:
    """(T, R) precision per IoU and recall threshold, averaged over categories (or one)."""
    p = _as_5d(precision)[:, :, :, area, max_dets]
    if category is not None:
        return p[:, :, category]
    return _masked_mean(p, axis=2)


def pr_curves(
    precision: np.ndarray,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    recall_thresholds: Sequence[float] = COCO_RECALL_THRESHOLDS,
    *,
    category: int | None = None,
    area: int = 0,
    max_dets: int = -1,
    title: str = "Precision-recall",
) -> Figure:
    """One precision-recall curve per IoU threshold, averaged over categories (or ``category``).

    Recall thresholds where no category has a value are left out of a curve; each legend entry
    gives that threshold's AP.
    """
    curves = precision_at_recall(precision, category, area, max_dets)
    recall = np.asarray(recall_thresholds, np.float64)
    if curves.shape != (len(iou_thresholds), len(recall)):
        raise ValueError(
            f"precision has {curves.shape[0]} IoU x {curves.shape[1]} recall thresholds, "
            f"got {len(iou_thresholds)} and {len(recall)} threshold values"
        )
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(iou_thresholds))
    for t, thr in enumerate(iou_thresholds):
        y = curves[t]
        ok = y > -1
        if not ok.any():
            continue
        ap = float(y[ok].mean())
        ax.plot(
            recall[ok], y[ok], color=colors[t], lw=1.6, label=f"IoU {thr:.2f}  AP {100 * ap:.1f}"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8, loc="lower left")
    return fig


def ap_threshold_curves(
    series: Mapping[str, Sequence[float]],
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    *,
    title: str = "AP at IoU threshold",
) -> Figure:
    """AP (fraction) against IoU threshold, one line per dataset or model in ``series``.

    Values of -1 (undefined) are left out. Refined ground truth shows up as a curve that falls
    less steeply at the strict thresholds.
    """
    thr = np.asarray(iou_thresholds, np.float64)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    markers = "osD^vP*X"
    for n, (name, values) in enumerate(series.items()):
        v = np.asarray(values, np.float64)
        if v.shape != thr.shape:
            raise ValueError(f"series {name!r} has {v.size} values for {thr.size} thresholds")
        ok = v > -1
        ax.plot(thr[ok], 100 * v[ok], marker=markers[n % len(markers)], ms=4, lw=1.6, label=name)
    ax.set_xticks(thr, [f"{t:.2f}" for t in thr])
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("AP (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=9)
    return fig


def category_ap_bars(
    series: Mapping[str, Mapping[str, float]],
    *,
    sort: str = "value",
    top: int | None = None,
    title: str = "AP per category",
) -> Figure:
    """Horizontal bars of AP (fraction) per category, one bar per series (dataset or model).

    ``sort``: "value" (first series, best first), "difference" (last minus first series, biggest
    gain first) or "name". ``top`` keeps the first N categories of that order. Undefined values
    (-1 or missing) draw no bar.
    """
    names = list(series)
    if not names:
        raise ValueError("no series to plot")
    cats = sorted({c for s in series.values() for c in s}, key=str.casefold)

    def value(s: str, c: str) -> float:
        v = series[s].get(c, -1.0)
        return float(v) if v is not None and v > -1 else np.nan

    if sort == "value":
        cats.sort(key=lambda c: -np.nan_to_num(value(names[0], c), nan=-1.0))
    elif sort == "difference":
        cats.sort(key=lambda c: -np.nan_to_num(value(names[-1], c) - value(names[0], c), nan=-9.0))
    elif sort != "name":
        raise ValueError(f"sort must be 'value', 'difference' or 'name', got {sort!r}")
    if top is not None:
        cats = cats[:top]
    n_series = len(names)
    height = max(2.5, 0.8 + len(cats) * (0.16 + 0.09 * n_series))
    fig = Figure(figsize=(7.0, height), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(cats), dtype=np.float64)
    bar_h = 0.8 / n_series
    colors = _colors(n_series)
    for n, s in enumerate(names):
        vals = np.array([value(s, c) for c in cats])
        ax.barh(
            y + (n - (n_series - 1) / 2) * bar_h,
            100 * np.nan_to_num(vals, nan=0.0),
            height=bar_h,
            color=colors[n],
            label=s,
        )
    ax.set_yticks(y, cats, fontsize=7 if len(cats) > 30 else 9)
    ax.invert_yaxis()
    ax.set_xlabel("AP (%)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if n_series > 1:  # under the axes, where it hides no bar
        fig.legend(fontsize=9, loc="outside lower center", ncols=min(n_series, 4))
    return fig


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis" if n > 4 else "tab10"]
    if n > 4:
        return [cmap(x) for x in np.linspace(0.0, 0.92, n)]
    return [cmap(i) for i in range(n)]


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save as PNG or SVG (from the suffix), atomically."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"plots are saved as .png or .svg, got {path.name!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path
