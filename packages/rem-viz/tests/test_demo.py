"""The `rem demo` step: the before/after report of the synthetic sample."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
from rich.console import Console

from rem_core.demo import DemoContext
from rem_core.io import read_json
from rem_core.schemas.eval_report import EvalReport, IouTypeMetrics, MetricArrays
from rem_viz.demo import step


def context(synth, out, **extra):
    buf = io.StringIO()
    ctx = DemoContext(
        out_dir=out,
        seed=0,
        console=Console(file=buf, width=300),
        artifacts={
            "images": synth.image_dir,
            "exact": synth.exact,
            "coarse": synth.coarse,
            "predictions": synth.predictions,
            **extra,
        },
    )
    return ctx, buf


def card_data(page):
    return json.loads(page.read_text().split('id="report-data">')[1].split("</script>")[0])


def test_step_writes_the_report_and_prints_its_path(synth, tmp_path):
    ctx, buf = context(synth, tmp_path)
    step(ctx)
    page = tmp_path / "report" / "index.html"
    assert ctx.artifacts["report"] == page and page.is_file()
    out = buf.getvalue()
    assert out.rstrip().splitlines()[-1] == f"report: {page}"
    data = card_data(page)
    # Every image with an instance gets a card; the empty ones (index % 7 == 3) have none.
    with_anns = {a["image_id"] for a in read_json(synth.exact)["annotations"]}
    assert sorted(int(c["key"]) for c in data["cards"]) == sorted(with_anns)
    assert data["title"] == "rem demo: coarse vs exact masks"
    summary = read_json(tmp_path / "report" / "summary.json")
    assert summary["a"]["name"] == "coarse" and summary["b"]["name"] == "exact"
    assert summary["overall"]["added"] == summary["overall"]["removed"] == 0


def test_step_prefers_refined_masks_and_adds_eval_plots(synth, tmp_path):
    refined = tmp_path / "refined.json"
    shutil.copy(synth.exact, refined)
    precision = np.full((10, 101, 2, 4, 3), -1.0)
    precision[:, :, :, 0, :] = np.linspace(1, 0.2, 101)[None, :, None, None]
    metrics = IouTypeMetrics(
        iou_type="segm",
        stats={"AP": 0.6},
        reference_stats=[0.6],
        reference_stat_names=["AP"],
        arrays=MetricArrays(precision=precision.tolist(), recall=[]),
    )
    report = EvalReport(
        ground_truth="exact.json",
        results="predictions.json",
        num_images=1,
        num_categories=2,
        num_ground_truth=1,
        num_detections=1,
        metrics={"segm": metrics},
    )
    report_path = tmp_path / "eval.json"
    report_path.write_text(report.model_dump_json())
    ctx, _ = context(synth, tmp_path / "demo", refined=refined, eval_report=report_path)
    step(ctx)
    page = ctx.artifacts["report"]
    data = card_data(page)
    assert data["title"] == "rem demo: coarse vs refined masks"
    figures = [f["src"] for f in data["figures"]]
    assert figures == ["plots/ap_thresholds_segm.png", "plots/pr_exact_segm.png"]
    for src in figures:
        assert (page.parent / src).read_bytes()[:4] == b"\x89PNG"


def test_step_without_inputs_says_why(tmp_path):
    buf = io.StringIO()
    ctx = DemoContext(out_dir=tmp_path, seed=0, console=Console(file=buf), artifacts={})
    step(ctx)
    assert "report" not in ctx.artifacts
    assert "no images, coarse, exact to compare" in buf.getvalue()
