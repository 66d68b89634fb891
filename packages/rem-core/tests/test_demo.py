"""`rem demo` end to end with controlled extension steps, and the sample summary it prints."""

from __future__ import annotations

import contextlib
import io
from importlib.metadata import EntryPoint

import cv2
import numpy as np
import pycocotools.mask as coco_mask
import pytest
from click.testing import CliRunner
from pycocotools.coco import COCO

from rem_core.cli import demo as demo_cli
from rem_core.cli.main import cli
from rem_core.demo import DEMO_STEPS_GROUP
from rem_core.synth import make_sample
from rem_core.synth.summary import summarize

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_demo_runs_steps_in_order_and_lists_artifacts(tmp_path, monkeypatch):
    calls = []

    def refine(ctx):
        calls.append(("20-refine", sorted(ctx.artifacts)))
        out = ctx.out_dir / "refined.json"
        out.write_bytes(ctx.artifacts["coarse"].read_bytes())
        ctx.artifacts["refined"] = out

    def evaluate(ctx):
        calls.append(("30-eval", sorted(ctx.artifacts)))
        ctx.console.print("eval step ran")

    monkeypatch.setattr(
        demo_cli, "demo_steps", lambda: [("20-refine", refine), ("30-eval", evaluate)]
    )
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "--out", str(out), "--num-images", "4", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [
        ("20-refine", ["coarse", "exact", "images", "predictions"]),
        ("30-eval", ["coarse", "exact", "images", "predictions", "refined"]),
    ]
    for name in ("exact.json", "coarse.json", "predictions.json"):
        assert (out / "sample" / name).is_file()
    assert len(list((out / "sample" / "images").iterdir())) == 4
    text = result.output
    assert "mean Boundary IoU, coarse vs exact" in text and "eval step ran" in text
    assert "refined" in text and "refined.json" in text
    assert "valid" in text and "exact.json" in text


def test_demo_without_steps_still_summarises(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_cli, "demo_steps", lambda: [])
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "no demo steps installed" in result.output
    assert "instances" in result.output


def test_failing_step_exits_1_naming_it(tmp_path, monkeypatch):
    def boom(ctx):
        raise ValueError("model exploded")

    monkeypatch.setattr(demo_cli, "demo_steps", lambda: [("30-eval", boom)])
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "-n", "2"])
    assert result.exit_code == 1
    assert "demo step 30-eval failed: ValueError: model exploded" in result.output


def test_broken_step_is_skipped_others_run_and_exit_is_1(tmp_path, monkeypatch):
    ran = []

    def broken_loader():
        raise ModuleNotFoundError("No module named 'rem_missing'")

    good = EntryPoint(name="40-viz", value="rem_core.synth:make_sample", group=DEMO_STEPS_GROUP)
    bad = EntryPoint(name="20-refine", value="rem_missing.demo:step", group=DEMO_STEPS_GROUP)
    monkeypatch.setattr(demo_cli, "demo_steps", broken_loader)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [good, bad])
    monkeypatch.setattr("rem_core.synth.make_sample", lambda ctx: ran.append(ctx.seed))
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "-n", "2", "--seed", "5"])
    assert ran == [5]
    assert result.exit_code == 1
    assert "skipping broken demo step 20-refine" in result.output
    assert "could not be loaded: 20-refine" in result.output


def _reference_band(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api's mask_to_boundary, written out with OpenCV's iterated erosion."""
    h, w = mask.shape
    d = max(1, round(ratio * np.sqrt(h**2 + w**2)))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    return mask - eroded


def test_summary_matches_pycocotools_and_reference_boundary(tmp_path):
    sample = make_sample(tmp_path, num_images=5, seed=4, width=240, height=180)
    s = summarize(sample.exact, sample.coarse, sample.predictions)
    with contextlib.redirect_stdout(io.StringIO()):
        exact, coarse = COCO(str(sample.exact)), COCO(str(sample.coarse))
    mask_ious, boundary_ious = [], []
    for ann_id, e in exact.anns.items():
        if e["iscrowd"]:
            continue
        g, d = exact.annToRLE(e), coarse.annToRLE(coarse.anns[ann_id])
        mask_ious.append(coco_mask.iou([d], [g], [0])[0, 0])
        bg = coco_mask.encode(np.asfortranarray(_reference_band(exact.annToMask(e))))
        bd = coco_mask.encode(
            np.asfortranarray(_reference_band(coarse.annToMask(coarse.anns[ann_id])))
        )
        boundary_ious.append(coco_mask.iou([bd], [bg], [0])[0, 0])
    assert s.images == 5 and s.instances == len(exact.anns) and s.categories == 6
    assert s.crowd == sum(a["iscrowd"] for a in exact.anns.values()) >= 1
    assert s.images_without_annotations == 1  # image index 3
    assert s.mean_mask_iou == pytest.approx(np.mean(mask_ious), abs=1e-12)
    assert s.mean_boundary_iou == pytest.approx(np.mean(boundary_ious), abs=1e-12)
    assert 0.5 < s.mean_boundary_iou < s.mean_mask_iou < 1
