"""LVIS federated AP equals lvis-api: checked against a plain re-derivation of eval.md §3
(always) and against lvis-api itself when it is installed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import rle_str, with_boxes
from reference_lvis import lvis_reference
from references import lvis_available, run_lvis

from rem_eval import evaluate
from rem_eval.synthetic import make_eval_set


def lvis_set(seed: int = 5, images: int = 20, dets: int = 30) -> tuple[dict, list[dict]]:
    """A synthetic set in LVIS form: frequencies, negative and not-exhaustive lists, no
    iscrowd, a few GT ``ignore`` flags, a zero-area GT and detections with empty masks."""
    s = make_eval_set(images, seed=seed, dets_per_image=dets)
    rng = np.random.default_rng(seed)
    gt = copy.deepcopy(s.gt)
    cats = [c["id"] for c in gt["categories"]]
    for c in gt["categories"]:
        c["frequency"] = "rcf"[int(rng.integers(3))]
    for a in gt["annotations"]:
        a.pop("iscrowd")
        if rng.random() < 0.05:
            a["ignore"] = 1
    gt["annotations"][0]["area"] = 0.0  # not loaded by lvis-api (area > 0 filter)
    for img in gt["images"]:
        img["neg_category_ids"] = [int(c) for c in rng.choice(cats, 10, replace=False)]
        img["not_exhaustive_category_ids"] = [int(c) for c in rng.choice(cats, 3, replace=False)]
    results = copy.deepcopy(s.results)
    for d in results[::37]:
        h, w = d["segmentation"]["size"]
        d["segmentation"] = rle_str(np.zeros((h, w), np.uint8))
    return gt, results


@pytest.mark.parametrize("kind", ["segm", "bbox", "boundary"])
@pytest.mark.parametrize("max_dets", [300, 12])
def test_matches_rederived_reference(kind, max_dets):
    gt, dets = lvis_set()
    ref = lvis_reference(gt, dets, kind, max_dets=max_dets)
    m = evaluate(gt, dets, [kind], lvis=True, max_dets=max_dets, workers=1).metrics[kind]
    assert np.array_equal(m.array("precision"), ref["precision"])
    assert np.array_equal(m.array("recall"), ref["recall"])
    assert m.reference_stat_names == list(ref["stats"])
    assert m.reference_stats == [float(v) for v in ref["stats"].values()]
    assert m.stats["APr"] == (None if ref["stats"]["APr"] == -1 else ref["stats"]["APr"])


def test_box_branch_and_coco_style_gt():
    """Results with boxes (area = w*h) and GT without LVIS image fields (no federated filter)."""
    gt, dets = lvis_set(seed=8)
    for img in gt["images"]:
        del img["neg_category_ids"]
    dets = with_boxes(dets)
    ref = lvis_reference(gt, dets, "segm")
    m = evaluate(gt, dets, ["segm"], lvis=True, workers=1).metrics["segm"]
    assert np.array_equal(m.array("precision"), ref["precision"])
    assert m.reference_stats == [float(v) for v in ref["stats"].values()]


@pytest.mark.skipif(not lvis_available(), reason="lvis-api is not installed")
@pytest.mark.parametrize("kind", ["segm", "bbox", "boundary"])
def test_matches_lvis_api(kind):
    gt, dets = lvis_set(seed=6)
    E = run_lvis(gt, dets, kind, max_dets=15)
    ref = lvis_reference(gt, dets, kind, max_dets=15)
    m = evaluate(gt, dets, [kind], lvis=True, max_dets=15, workers=1).metrics[kind]
    assert np.array_equal(ref["precision"], E.eval["precision"])  # the re-derivation is faithful
    assert np.array_equal(m.array("precision"), E.eval["precision"])
    assert np.array_equal(m.array("recall"), E.eval["recall"])
    assert m.reference_stats == [float(v) for v in E.results.values()]
