"""`rem eval` / `rem eval-referring`: tables, JSON reports, and one-line errors with exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import edge_case_set, rle_str
from references import run_cocoeval

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_core.schemas import EvalComparison, EvalReport
from rem_eval import evaluate


@pytest.fixture
def files(tmp_path):
    gt, dets = edge_case_set()
    g, d = tmp_path / "gt.json", tmp_path / "dets.json"
    g.write_text(json.dumps(gt))
    d.write_text(json.dumps(dets))
    return gt, dets, g, d


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_eval_table_and_json(files, tmp_path):
    gt, dets, g, d = files
    out = tmp_path / "report.json"
    res = run("eval", g, d, "--iou-type", "segm", "boundary", "bbox", "--per-class", "--json", out)
    assert res.exit_code == 0, res.output
    assert "boundary" in res.output and "Per-category AP" in res.output
    report = EvalReport.model_validate_json(out.read_text())
    assert list(report.metrics) == ["segm", "boundary", "bbox"]
    E = run_cocoeval(gt, dets, "segm")
    assert report.metrics["segm"].reference_stats == [float(v) for v in E.stats]
    assert f"{100 * E.stats[0]:.1f}" in res.output


def test_eval_arrays_in_json(files, tmp_path):
    _, _, g, d = files
    out = tmp_path / "r.json"
    assert run("eval", g, d, "--arrays", "--json", out).exit_code == 0
    report = EvalReport.model_validate_json(out.read_text())
    assert np.asarray(report.metrics["segm"].arrays.precision).shape == (10, 101, 4, 4, 3)


def test_several_ground_truths_side_by_side(files, tmp_path):
    gt, _dets, g, d = files
    g2 = tmp_path / "gt2.json"
    gt2 = json.loads(json.dumps(gt))
    for a in gt2["annotations"]:
        a["bbox"][0] += 1  # a slightly different GT for the box AP
    g2.write_text(json.dumps(gt2))
    out = tmp_path / "cmp.json"
    res = run(
        "eval", g, g2, d, "--coco-rem", "--iou-type", "segm", "boundary", "bbox", "--json", out
    )
    assert res.exit_code == 0, res.output
    assert "Δ" in res.output and "AP90" in res.output
    comp = EvalComparison.model_validate_json(out.read_text())
    assert [r.ground_truth for r in comp.reports] == [str(g), str(g2)]
    assert comp.reports[0].metrics["segm"].stats == comp.reports[1].metrics["segm"].stats
    assert comp.reports[0].metrics["bbox"].stats != comp.reports[1].metrics["bbox"].stats


def _error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_unknown_image(files, tmp_path):
    _, dets, g, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([*dets, {**dets[0], "image_id": 999}]))
    line = _error(run("eval", g, bad))
    assert "image 999 is not in the ground truth" in line and f"[{len(dets)}].image_id" in line


def test_unknown_category(files, tmp_path):
    gt, dets, g, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**dets[0], "category_id": 55}, *dets]))
    assert "category 55 is not in the ground truth" in _error(run("eval", g, bad))
    # The references' behaviour on request: skipped, numbers unchanged.
    res = run("eval", g, bad, "--skip-unknown-categories", "--json", tmp_path / "r.json")
    assert res.exit_code == 0 and "were skipped" in res.output
    report = EvalReport.model_validate_json((tmp_path / "r.json").read_text())
    assert report.metrics["segm"].reference_stats == [
        float(v) for v in run_cocoeval(gt, dets, "segm").stats
    ]


def test_rle_size_mismatch(files, tmp_path):
    _, dets, g, _ = files
    bad = tmp_path / "bad.json"
    wrong = {**dets[3], "segmentation": rle_str(np.ones((10, 10), np.uint8))}
    bad.write_text(json.dumps([*dets[:3], wrong]))
    line = _error(run("eval", g, bad))
    assert "does not match image" in line and "[3].segmentation.size" in line


def test_nan_score(files, tmp_path):
    gt, dets, g, _ = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dets).replace('"score": 0.9', '"score": NaN', 1))
    line = _error(run("eval", g, bad))
    assert "NaN" in line or "finite" in line
    with pytest.raises(RemError, match="finite"):
        evaluate(gt, [{**dets[0], "score": math.nan}], workers=1)


def test_missing_file_and_wrong_kind(files, tmp_path):
    _, _, g, d = files
    assert "not found" in _error(run("eval", g, tmp_path / "nope.json"))
    assert "JSON list of detections" in _error(run("eval", g, g))
    assert "give a ground truth" in _error(run("eval", d))


def test_empty_results_file(files, tmp_path):
    gt, _, g, _ = files
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    out = tmp_path / "r.json"
    res = run("eval", g, empty, "--json", out)
    assert res.exit_code == 0, res.output
    report = EvalReport.model_validate_json(out.read_text())
    assert report.metrics["segm"].reference_stats == [
        float(v) for v in run_cocoeval(gt, [], "segm").stats
    ]


def test_box_only_results_default_to_bbox(files, tmp_path):
    _, dets, g, _ = files
    boxes = tmp_path / "boxes.json"
    boxes.write_text(
        json.dumps(
            [
                {k: v for k, v in x.items() if k != "segmentation"} | {"bbox": [1, 2, 30, 40]}
                for x in dets
            ]
        )
    )
    out = tmp_path / "r.json"
    assert run("eval", g, boxes, "--json", out).exit_code == 0
    assert list(EvalReport.model_validate_json(out.read_text()).metrics) == ["bbox"]


def test_lvis_flag(files, tmp_path):
    gt, _dets, _, d = files
    for c in gt["categories"]:
        c["frequency"] = "f"
    g = tmp_path / "lvis.json"
    g.write_text(json.dumps(gt))
    out = tmp_path / "r.json"
    res = run("eval", g, d, "--lvis", "--json", out)
    assert res.exit_code == 0, res.output
    m = EvalReport.model_validate_json(out.read_text()).metrics["segm"]
    assert m.protocol == "lvis" and "AR@300" in m.stats and m.stats["APf"] == m.stats["AP"]
