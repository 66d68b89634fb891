"""Plots checked against pycocotools' COCOeval on the real COCO sample."""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rem_core.cli.main import cli
from rem_core.schemas.eval_report import (
    COCO_STAT_NAMES,
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    IouTypeMetrics,
    MetricArrays,
)
from rem_viz import (
    ap_per_category,
    ap_per_threshold,
    ap_threshold_curves,
    category_ap_bars,
    pr_curves,
    save_figure,
)
from rem_viz.eval_reports import ap_by_threshold, load_reports


def evaluate(gt_path, grow: int, seed: int):
    """COCOeval of GT masks grown (or shrunk) by ``grow`` px with random scores."""
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = COCO(str(gt_path))
    rng = np.random.default_rng(seed)
    dets = []
    for ann in gt.dataset["annotations"]:
        if ann["iscrowd"] or rng.random() < 0.15:
            continue
        m = gt.annToMask(ann)
        k = np.ones((2 * abs(grow) + 1,) * 2, np.uint8)
        m = cv2.dilate(m, k) if grow > 0 else cv2.erode(m, k)
        if not m.any():
            continue
        rle = coco_mask.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode()
        dets.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": rle,
                "score": float(rng.random()),
            }
        )
    with quiet:
        ev = COCOeval(gt, gt.loadRes(dets), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return gt, ev


@pytest.fixture(scope="module")
def evals(coco30):
    gt_path = coco30 / "instances_val2017_30.json"
    return {"grown": evaluate(gt_path, 2, 0), "shrunk": evaluate(gt_path, -3, 1)}


def test_ap_helpers_agree_with_cocoeval_stats(evals):
    _, ev = evals["grown"]
    precision = ev.eval["precision"]
    per_t = ap_per_threshold(precision)
    assert per_t.shape == (10,)
    assert per_t.mean() == pytest.approx(ev.stats[0], abs=1e-12)
    assert per_t[0] == pytest.approx(ev.stats[1], abs=1e-12)
    assert per_t[5] == pytest.approx(ev.stats[2], abs=1e-12)
    per_k = ap_per_category(precision)
    k = 0
    s = precision[:, :, k, 0, -1]
    assert per_k[k] == pytest.approx(s[s > -1].mean(), abs=1e-12)
    # Categories without GT in the sample stay undefined (-1), the others are defined.
    has_gt = (precision[:, :, :, 0, -1] > -1).any(axis=(0, 1))
    assert 0 < has_gt.sum() < len(has_gt)
    assert (per_k[~has_gt] == -1).all() and (per_k[has_gt] >= 0).all()


def test_pr_curves_plot_the_category_mean_of_cocoeval_precision(evals, tmp_path):
    _, ev = evals["grown"]
    precision = ev.eval["precision"]
    fig = pr_curves(precision, ev.params.iouThrs, ev.params.recThrs)
    lines = fig.axes[0].lines
    assert len(lines) == 10
    for t, line in enumerate(lines):
        p = precision[t, :, :, 0, -1]
        want = np.array([row[row > -1].mean() for row in p])
        assert np.allclose(line.get_ydata(), want)
        assert np.allclose(line.get_xdata(), ev.params.recThrs)
    assert f"AP {100 * ev.stats[1]:.1f}" in lines[0].get_label()
    png = save_figure(fig, tmp_path / "pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = save_figure(fig, tmp_path / "pr.svg")
    assert ET.parse(svg).getroot().tag.endswith("svg")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_figure(fig, tmp_path / "pr.gif")


def test_threshold_curves_and_category_bars_show_the_given_values(evals):
    series = {name: ap_per_threshold(ev.eval["precision"]) for name, (_, ev) in evals.items()}
    fig = ap_threshold_curves(series)
    for line, (name, values) in zip(fig.axes[0].lines, series.items()):
        assert line.get_label() == name
        assert np.allclose(line.get_ydata(), 100 * values)
    bars = {"a": {"cat": 0.5, "dog": 0.25, "cow": -1.0}, "b": {"cat": 0.6, "dog": 0.75}}
    fig = category_ap_bars(bars, sort="difference")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dog", "cat", "cow"]
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx([25, 50, 0, 75, 60, 0])


def _report(gt_name, ev, gt, with_arrays=True):
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    per_cat = []
    for k, cid in enumerate(ev.params.catIds):
        s = ev.eval["precision"][:, :, k, 0, -1]
        per_cat.append(
            CategoryMetrics(
                id=cid,
                name=names[cid],
                ap=float(s[s > -1].mean()) if (s > -1).any() else None,
                num_gt=0,
                num_det=0,
            )
        )
    metrics = IouTypeMetrics(
        iou_type="segm",
        stats={n: (None if v < 0 else float(v)) for n, v in zip(COCO_STAT_NAMES, ev.stats)},
        reference_stats=[float(v) for v in ev.stats],
        reference_stat_names=COCO_STAT_NAMES,
        per_category=per_cat,
        arrays=MetricArrays(
            precision=ev.eval["precision"].tolist(), recall=ev.eval["recall"].tolist()
        )
        if with_arrays
        else None,
    )
    return EvalReport(
        ground_truth=gt_name,
        results="dets.json",
        num_images=30,
        num_categories=80,
        num_ground_truth=1,
        num_detections=1,
        metrics={"segm": metrics},
    )


def test_reports_plot_through_the_cli(evals, tmp_path):
    gt, grown = evals["grown"]
    _, shrunk = evals["shrunk"]
    comparison = EvalComparison(
        results="dets.json",
        reports=[_report("coco.json", grown, gt), _report("coco_rem.json", shrunk, gt)],
    )
    path = tmp_path / "cmp.json"
    path.write_text(comparison.model_dump_json())
    out = tmp_path / "plots"
    result = CliRunner().invoke(cli, ["plot", str(path), "--out", str(out), "--format", "svg"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "ap_thresholds_segm.svg",
        "category_ap_segm.svg",
        "pr_coco_rem_segm.svg",
        "pr_coco_segm.svg",
    ]
    assert f"segm: AP at IoU threshold: {out / 'ap_thresholds_segm.svg'}" in result.output
    # The plotted AP at .50 and .75 are COCOeval's AP50 and AP75 of each ground truth.
    root = ET.parse(out / "ap_thresholds_segm.svg").getroot()
    assert root.tag.endswith("svg")
    reports = load_reports(path)
    for report, ev in zip(reports, (grown, shrunk)):
        values = ap_by_threshold(report.metrics["segm"])
        assert values[0] == pytest.approx(ev.stats[1], abs=1e-12)
        assert values[5] == pytest.approx(ev.stats[2], abs=1e-12)
        assert values.mean() == pytest.approx(ev.stats[0], abs=1e-12)


def test_threshold_ap_from_stats_when_no_arrays_are_written(evals):
    gt, grown = evals["grown"]
    report = _report("coco.json", grown, gt, with_arrays=False)
    values = ap_by_threshold(report.metrics["segm"])
    assert values[0] == pytest.approx(grown.stats[1]) and values[5] == pytest.approx(grown.stats[2])
    assert (np.delete(values, [0, 5]) == -1).all()


def test_bad_report_is_a_user_error(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"ground_truth": "x"}))
    result = CliRunner().invoke(cli, ["plot", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert (
        result.output.startswith(f"error: {path}: ") and "not an evaluation report" in result.output
    )
