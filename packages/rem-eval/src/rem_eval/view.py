"""Rich tables for evaluation reports: one ground truth, several side by side, per class."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rem_core.schemas.eval_report import (
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    ReferringReport,
)

_LVIS_KEYS = ["APr", "APc", "APf"]


def pct(v: float | None) -> str:
    """A metric as a percentage with one decimal ("—" when undefined)."""
    return "—" if v is None else f"{100 * v:.1f}"


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    d = 100 * (b - a)
    color = "green" if d > 0.05 else "red" if d < -0.05 else "dim"
    return f"[{color}]{d:+.1f}[/{color}]"


def _columns(report: EvalReport) -> list[str]:
    """Row order: AP, AP at each threshold, APs/m/l, APr/c/f, then the recalls."""
    keys: list[str] = []
    for m in report.metrics.values():
        for k in m.stats:
            if k not in keys:
                keys.append(k)
    thresholds = [
        k for k in keys if k.startswith("AP") and (k[2:].isdigit() or k.startswith("AP@"))
    ]
    areas = [
        k
        for k in keys
        if k.startswith("AP") and k not in thresholds and k not in _LVIS_KEYS and k != "AP"
    ]
    lvis = [k for k in _LVIS_KEYS if k in keys]
    recall = [k for k in keys if k.startswith("AR")]
    return [*(["AP"] if "AP" in keys else []), *thresholds, *areas, *lvis, *recall]


def report_table(report: EvalReport) -> Table:
    """Metrics as rows (AP, AP50, AP75, APs/m/l, APr/c/f, AP at each other threshold, AR),
    one column per IoU type; values in percent."""
    rows = _columns(report)
    table = Table(title=f"{report.results} vs {report.ground_truth}", title_style="bold")
    table.add_column("metric", style="bold")
    for kind, m in report.metrics.items():
        name = kind if m.protocol == "coco" else f"{kind} ({m.protocol.upper()})"
        table.add_column(name, justify="right")
    for key in rows:
        table.add_row(key, *[pct(m.stats.get(key)) for m in report.metrics.values()])
    return table


def per_class_table(report: EvalReport) -> Table:
    """Per-category AP of every IoU type (AP and AP50; VOC: AP at each threshold), with GT and
    detection counts."""
    kinds = list(report.metrics)
    table = Table(title="Per-category AP (area all)", title_style="bold")
    table.add_column("id", justify="right")
    table.add_column("category")
    columns: list[tuple[str, str]] = []  # (IoU type, metric)
    for k in kinds:
        m = report.metrics[k]
        names = list(m.stats) if m.protocol == "voc" else ["AP", "AP50"]
        columns += [(k, n) for n in names]
    for k, n in columns:
        table.add_column(f"{k} {n}", justify="right")
    table.add_column("GT", justify="right")
    table.add_column("dets", justify="right")
    rows = {k: {c.id: c for c in report.metrics[k].per_category} for k in kinds}
    first = report.metrics[kinds[0]].per_category
    for cat in first:
        cells = [pct(_category_value(rows[k].get(cat.id), n)) for k, n in columns]
        table.add_row(str(cat.id), cat.name, *cells, str(cat.num_gt), str(cat.num_det))
    return table


def _category_value(c: CategoryMetrics | None, name: str) -> float | None:
    if c is None:
        return None
    if c.ap_at is not None:
        return c.ap_at.get(name)
    return c.ap if name == "AP" else c.ap50


def comparison_table(comp: EvalComparison) -> Table:
    """Each IoU type's AP at every threshold, one column per ground truth, plus differences
    against the first ground truth (COCO-ReM's view: mask and boundary AP on COCO-2017 vs
    COCO-ReM)."""
    reports = comp.reports
    kinds = list(reports[0].metrics)
    names = [r.ground_truth for r in reports]
    table = Table(title=f"{comp.results}: AP on each ground truth", title_style="bold")
    table.add_column("metric", style="bold")
    for k in kinds:
        for i, n in enumerate(names):
            table.add_column(f"{k}\n{_short(n)}", justify="right")
            if i > 0:
                table.add_column(f"{k}\nΔ", justify="right")
    keys: list[str] = []
    for r in reports:
        for k in kinds:
            for key in r.metrics[k].stats:
                if key.startswith("AP") and key not in keys:
                    keys.append(key)
    order = ["AP"] if "AP" in keys else []
    order += [k for k in keys if k[2:].isdigit() or k.startswith("AP@")]
    order += [k for k in ("APs", "APm", "APl", "APr", "APc", "APf") if k in keys]
    for key in order:
        cells = []
        for k in kinds:
            base = reports[0].metrics[k].stats.get(key)
            for i, r in enumerate(reports):
                v = r.metrics[k].stats.get(key)
                cells.append(pct(v))
                if i > 0:
                    cells.append(_delta(base, v))
        table.add_row(key, *cells)
    return table


def _short(name: str) -> str:
    return name if len(name) <= 28 else "…" + name[-27:]


def referring_table(report: ReferringReport) -> Table:
    table = Table(title=f"{report.predictions} vs {report.ground_truth}", title_style="bold")
    cols = ["oIoU", "mIoU", *[f"P@{t}" for t in report.precision_at]]
    for c in ["samples", *cols]:
        table.add_column(c, justify="right")
    table.add_row(
        str(report.num_samples),
        pct(report.oiou),
        pct(report.miou),
        *[pct(v) for v in report.precision_at.values()],
    )
    return table


def print_warnings(console: Console, warnings: list[str]) -> None:
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
