"""The `rem demo` step of rem-viz: the before/after report of the demo's refinement.

It compares the coarse annotations with the refined ones (or, when no refinement step ran, with
the exact masks they were degraded from), adds the evaluation plots when an earlier step wrote
an evaluation report, and writes the HTML report under ``<out>/report``.
"""

from __future__ import annotations

from pathlib import Path

from rem_core.demo import DemoContext
from rem_viz.compare import compare_sets, write_comparison
from rem_viz.instances import load_annotation_set
from rem_viz.reports import comparison_report


def step(ctx: DemoContext) -> None:
    """Write ``ctx.out_dir/report/index.html`` and record it as ``ctx.artifacts["report"]``."""
    arts = ctx.artifacts
    after_key = "refined" if "refined" in arts else "exact"
    needed = ("images", "coarse", after_key)
    absent = [k for k in needed if k not in arts]
    if absent:
        ctx.console.print(f"viz: no report, the demo has no {', '.join(absent)} to compare")
        return
    report_dir = Path(ctx.out_dir) / "report"
    comparison = compare_sets(
        load_annotation_set(arts["coarse"]),
        load_annotation_set(arts[after_key]),
        image_dir=arts["images"],
        out_dir=report_dir,
        names=("coarse", after_key),
        console=ctx.console,
    )
    write_comparison(comparison, report_dir)
    figures = _eval_figures(ctx, report_dir)
    page = comparison_report(
        comparison,
        report_dir,
        title=f"rem demo: coarse vs {after_key} masks",
        figures=figures,
    )
    arts["report"] = page
    overall = comparison.summary()["overall"]
    iou = overall["mean_mask_iou"]
    ctx.console.print(
        f"viz: compared {len(comparison.images)} images, "
        f"{overall['matched']} instances matched"
        + ("" if iou is None else f", mean mask IoU coarse vs {after_key} {iou:.3f}")
    )
    ctx.console.print(f"report: {page}", soft_wrap=True, highlight=False)


def _eval_figures(ctx: DemoContext, report_dir: Path) -> list[tuple[str, str]]:
    """Plots of the evaluation report an earlier step left, as (title, path relative to the
    report); none when there is no report."""
    report = ctx.artifacts.get("eval_report")
    if report is None:
        return []
    from rem_viz.eval_reports import plot_reports

    written = plot_reports([Path(report)], report_dir / "plots")
    return [(title, path.relative_to(report_dir).as_posix()) for title, path in written]
