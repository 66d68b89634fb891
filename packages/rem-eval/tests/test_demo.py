"""The `rem demo` step: coarse (and refined) annotations scored against the exact masks."""

from __future__ import annotations

import json

import pytest
from pycocotools import mask as mask_utils
from references import run_cocoeval
from rich.console import Console

from rem_core.demo import DemoContext
from rem_core.schemas import EvalComparison
from rem_eval.demo import annotations_as_results, step


def test_demo_step(tmp_path):
    synth = pytest.importorskip("rem_core.synth")
    sample = synth.make_sample(tmp_path / "sample", num_images=4, seed=3)
    console = Console(record=True, width=120)
    ctx = DemoContext(out_dir=tmp_path, seed=3, console=console)
    ctx.artifacts.update(
        {"exact": sample.exact, "coarse": sample.coarse, "predictions": sample.predictions}
    )
    step(ctx)
    out = ctx.artifacts["eval_report"]
    comp = EvalComparison.model_validate_json(out.read_text())
    assert [r.results for r in comp.reports] == ["coarse", "predictions"]
    text = console.export_text()
    assert "boundary AP" in text and "coarse" in text
    # The coarse row equals pycocotools on the same inputs (mask areas, score 1).
    gt = json.loads(sample.exact.read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    results = annotations_as_results(sample.coarse)
    for r in results:  # pycocotools' loadRes takes compressed RLE only
        h, w = sizes[r["image_id"]]
        seg = r["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
        r["segmentation"] = rle
    E = run_cocoeval(gt, results, "segm")
    assert comp.reports[0].metrics["segm"].reference_stats == [float(v) for v in E.stats]
    assert comp.reports[0].metrics["segm"].arrays is not None  # for rem-viz's plots


def test_demo_step_without_exact(tmp_path):
    console = Console(record=True)
    ctx = DemoContext(out_dir=tmp_path, seed=0, console=console)
    step(ctx)
    assert "eval_report" not in ctx.artifacts
    assert "skipped" in console.export_text()
