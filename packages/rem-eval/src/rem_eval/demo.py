"""`rem demo` step "30-eval": score the demo's annotations against the exact masks.

The coarse annotations (and the refined ones, when the refine step ran) are evaluated as
results with score 1 against the exact ground truth, mask AP and Boundary AP side by side; the
scored predictions too when the demo made them. The reports are written to
``<out>/eval_report.json`` (one entry per annotation set, with the precision arrays for the
plots) and recorded as ``ctx.artifacts["eval_report"]``.
"""

from __future__ import annotations

from rich.table import Table

from rem_core.demo import DemoContext
from rem_core.io import read_json, save_json
from rem_core.schemas.eval_report import EvalComparison, EvalReport
from rem_eval.api import evaluate
from rem_eval.view import pct


def annotations_as_results(path) -> list[dict]:
    """A COCO instances file's annotations as results with score 1 (boxes left out, so that
    detection areas are mask areas)."""
    data = read_json(path)
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "segmentation": a["segmentation"],
            "score": 1.0,
        }
        for a in data.get("annotations", [])
        if a.get("segmentation") is not None and not a.get("iscrowd", 0)
    ]


def step(ctx: DemoContext) -> None:
    exact = ctx.artifacts.get("exact")
    if exact is None:
        ctx.console.print("eval: no exact ground truth in this demo; skipped")
        return
    sets: list[tuple[str, object]] = []
    for name in ("coarse", "refined"):
        if name in ctx.artifacts:
            sets.append((name, annotations_as_results(ctx.artifacts[name])))
    if "predictions" in ctx.artifacts:
        sets.append(("predictions", ctx.artifacts["predictions"]))
    if not sets:
        ctx.console.print("eval: nothing to evaluate")
        return
    reports: list[EvalReport] = []
    table = Table(title="rem eval: against the exact masks", title_style="bold")
    for col in ("set", "segm AP", "boundary AP", "Δ", "segm AP75", "boundary AP75"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, results in sets:
        report = evaluate(
            exact,
            results,
            ["segm", "boundary"],
            mask_areas=True,
            strict_categories=False,
            arrays=True,
            workers=1,
        )
        report.results = name
        reports.append(report)
        seg, bnd = report.metrics["segm"].stats, report.metrics["boundary"].stats
        delta = (
            "—"
            if seg["AP"] is None or bnd["AP"] is None
            else f"{100 * (bnd['AP'] - seg['AP']):+.1f}"
        )
        table.add_row(
            name, pct(seg["AP"]), pct(bnd["AP"]), delta, pct(seg.get("AP75")), pct(bnd.get("AP75"))
        )
    ctx.console.print(table)
    out = ctx.out_dir / "eval_report.json"
    comparison = EvalComparison(results=", ".join(n for n, _ in sets), reports=reports)
    save_json(out, comparison.model_dump(mode="json"))
    ctx.artifacts["eval_report"] = out
    ctx.console.print(f"eval: report written to {out}", highlight=False)
