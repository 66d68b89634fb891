"""rem_eval.compat.COCOeval is a drop-in for pycocotools' COCOeval (results and internals)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import edge_case_set, with_boxes
from references import coco_from_dict, quiet, run_cocoeval

from rem_eval.compat import COCO, COCOeval


def _same_eval_imgs(ours, theirs) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is None:
            continue
        for key in ("image_id", "category_id", "dtIds", "gtIds", "dtScores", "maxDet"):
            assert list(np.atleast_1d(a[key])) == list(np.atleast_1d(b[key])), key
        for key in ("dtMatches", "gtMatches", "gtIgnore", "dtIgnore"):
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


@pytest.mark.parametrize("kind", ["segm", "bbox"])
@pytest.mark.parametrize("source", ["rem", "pycocotools"])
def test_drop_in(kind, source):
    gt, dets = edge_case_set()
    dets = with_boxes(dets)
    if source == "rem":
        coco_gt = COCO(copy.deepcopy(gt))
        coco_dt = coco_gt.loadRes(dets)
    else:
        coco_gt = coco_from_dict(gt)
        with quiet():
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
    E = COCOeval(coco_gt, coco_dt, kind)
    E.params.maxDets = [1, 10, 100]
    with quiet():
        E.evaluate()
        E.accumulate()
        E.summarize()
    R = run_cocoeval(gt, dets, kind)
    for name in ("precision", "recall", "scores"):
        assert np.array_equal(E.eval[name], R.eval[name])
    assert np.array_equal(E.stats, R.stats)
    _same_eval_imgs(E.evalImgs, R.evalImgs)
    for key, v in R.ious.items():
        w = E.ious[key]
        if len(v) == 0:
            assert len(w) == 0
        else:
            assert np.array_equal(np.asarray(w), np.asarray(v))


def test_summarize_prints_the_reference_lines(capsys):
    gt, dets = edge_case_set()
    coco_gt = COCO(copy.deepcopy(gt))
    E = COCOeval(coco_gt, coco_gt.loadRes(dets), "segm")
    E.evaluate()
    E.accumulate()
    E.summarize()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "
    )
    assert out[0].endswith(f"{E.stats[0]:0.3f}")
    assert len(out) == 12


def test_loadres_leaves_input_untouched():
    gt, dets = edge_case_set()
    before = copy.deepcopy(dets)
    COCO(copy.deepcopy(gt)).loadRes(dets)
    assert dets == before


def test_boundary_iou_type():
    gt, dets = edge_case_set()
    coco_gt = COCO(copy.deepcopy(gt))
    E = COCOeval(coco_gt, coco_gt.loadRes(dets), "boundary")
    with quiet():
        E.evaluate()
        E.accumulate()
        E.summarize()
    R = run_cocoeval(gt, dets, "boundary")
    assert np.array_equal(E.eval["precision"], R.eval["precision"])
    assert np.array_equal(E.stats, R.stats)
