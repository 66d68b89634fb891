"""COCO segm / bbox: every array and stat equals pycocotools' COCOeval, to the last bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import assert_matches_coco, edge_case_set, perturbed_predictions, with_boxes
from references import run_cocoeval

from rem_eval import evaluate
from rem_eval.synthetic import make_eval_set


@pytest.mark.parametrize("kind", ["segm", "bbox"])
@pytest.mark.parametrize("boxes", [False, True], ids=["masks-only", "with-bbox"])
def test_edge_cases(kind, boxes):
    gt, dets = edge_case_set()
    if boxes:
        dets = with_boxes(dets)
    report = evaluate(gt, dets, [kind], workers=1)
    E = run_cocoeval(gt, dets, kind)
    assert_matches_coco(report.metrics[kind], E)
    # The set is built so that these cases really occur.
    assert report.metrics[kind].stats["AP"] is not None


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", ["segm", "bbox"])
def test_synthetic_sets(seed, kind):
    s = make_eval_set(30, seed=seed, dets_per_image=40)
    report = evaluate(s.gt, s.results, [kind], workers=1)
    assert_matches_coco(report.metrics[kind], run_cocoeval(s.gt, s.results, kind))


def test_parallel_workers_give_the_same_numbers():
    s = make_eval_set(120, seed=4, dets_per_image=170)  # > 20k detections: the pool is used
    one = evaluate(s.gt, s.results, ["segm", "bbox"], workers=1)
    two = evaluate(s.gt, s.results, ["segm", "bbox"], workers=2)
    for kind in ("segm", "bbox"):
        assert np.array_equal(
            one.metrics[kind].array("precision"), two.metrics[kind].array("precision")
        )
        assert one.metrics[kind].reference_stats == two.metrics[kind].reference_stats


def _setter(**values):
    def setup(p):
        for k, v in values.items():
            setattr(p, k, v)

    return setup


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({"max_dets": [1, 5, 20]}, {"maxDets": [1, 5, 20]}),
        ({"max_dets": [3, 7, 200]}, {"maxDets": [3, 7, 200]}),
        ({"iou_thrs": [0.0, 0.3, 0.5, 0.9]}, {"iouThrs": np.array([0.0, 0.3, 0.5, 0.9])}),
        (
            {"rec_thrs": [0.0, 0.25, 0.5, 0.75, 1.0]},
            {"recThrs": np.array([0.0, 0.25, 0.5, 0.75, 1.0])},
        ),
        (
            {
                "area_rng": [[0, 1e10], [0, 1024], [1024, 1e10]],
                "area_rng_lbl": ["all", "small", "large"],
            },
            {
                "areaRng": [[0, 1e10], [0, 1024], [1024, 1e10]],
                "areaRngLbl": ["all", "small", "large"],
            },
        ),
        ({"use_cats": False}, {"useCats": 0}),
        ({"img_ids": [1, 3, 8]}, {"imgIds": [1, 3, 8]}),
        ({"cat_ids": [1, 7]}, {"catIds": [1, 7]}),
    ],
    ids=[
        "maxdets",
        "maxdets-big",
        "iouthrs",
        "recthrs",
        "arearng",
        "no-cats",
        "img-subset",
        "cat-subset",
    ],
)
@pytest.mark.parametrize("kind", ["segm", "bbox"])
def test_custom_parameters(ours, theirs, kind):
    gt, dets = edge_case_set()
    report = evaluate(gt, dets, [kind], workers=1, **ours)
    E = run_cocoeval(gt, dets, kind, setup=_setter(**theirs))
    m = report.metrics[kind]
    assert np.array_equal(m.array("precision"), E.eval["precision"])
    assert np.array_equal(m.array("recall"), E.eval["recall"])
    assert np.array_equal(m.array("scores"), E.eval["scores"])
    if len(E.params.maxDets) >= 3:
        assert m.reference_stats == [float(v) for v in E.stats]


def test_empty_results_give_the_reference_answer():
    """pycocotools' loadRes crashes on []; evaluating no detections gives 0 AP where GT exists."""
    gt, _ = edge_case_set()
    report = evaluate(gt, [], ["segm", "bbox"], workers=1)
    for kind in ("segm", "bbox"):
        E = run_cocoeval(gt, [], kind)
        assert_matches_coco(report.metrics[kind], E)
        assert report.metrics[kind].stats["AP"] == 0.0


def test_gt_ignore_key_has_no_effect_in_pycocotools_mode():
    gt, dets = edge_case_set()
    gt2 = copy.deepcopy(gt)
    for a in gt2["annotations"]:
        a.pop("ignore", None)
    a = evaluate(gt, dets, ["segm"], workers=1).metrics["segm"]
    b = evaluate(gt2, dets, ["segm"], workers=1).metrics["segm"]
    assert a.reference_stats == b.reference_stats
    c = evaluate(gt, dets, ["segm"], workers=1, gt_ignore="ignore_or_iscrowd").metrics["segm"]
    assert c.reference_stats != a.reference_stats


def test_mask_areas_drop_result_boxes():
    """With boxes in the results the box area decides the area ranges; --mask-areas restores
    the mask areas (COCO-ReM's evaluator), i.e. the numbers of the box-less results."""
    gt, dets = edge_case_set()
    boxed = with_boxes(dets)
    plain = evaluate(gt, dets, ["segm"], workers=1).metrics["segm"]
    dropped = evaluate(gt, boxed, ["segm"], workers=1, mask_areas=True).metrics["segm"]
    assert dropped.reference_stats == plain.reference_stats


def test_ap_at_high_thresholds_are_found_by_index():
    gt, dets = edge_case_set()
    m = evaluate(gt, dets, ["segm"], workers=1).metrics["segm"]
    p = m.array("precision")[:, :, :, 0, -1]
    for t, key in enumerate(
        ["AP50", "AP55", "AP60", "AP65", "AP70", "AP75", "AP80", "AP85", "AP90", "AP95"]
    ):
        v = p[t][p[t] > -1]
        assert m.stats[key] == float(np.mean(v))
    # linspace's 0.8999999999999999 is why pycocotools-style float equality would miss AP90.
    assert 0.9 not in np.linspace(0.5, 0.95, 10)


@pytest.mark.parametrize("kind", ["segm", "bbox"])
@pytest.mark.parametrize("boxes", [False, True], ids=["masks-only", "with-bbox"])
def test_real_coco_sample(coco30, kind, boxes):
    dets = perturbed_predictions(coco30, seed=3, with_bbox=boxes)
    report = evaluate(coco30, dets, [kind], workers=1)
    E = run_cocoeval(coco30, dets, kind)
    assert_matches_coco(report.metrics[kind], E)
    # Per-category AP is the mean of that category's valid precision entries.
    prec = E.eval["precision"][:, :, :, 0, -1]
    cats = sorted(c["id"] for c in coco30["categories"])
    for row in report.metrics[kind].per_category:
        k = cats.index(row.id)
        v = prec[:, :, k][prec[:, :, k] > -1]
        assert row.ap == (float(np.mean(v)) if v.size else None)


def test_gt_id_zero_quirk_is_reproduced_and_reported():
    gt, dets = edge_case_set()
    gt = copy.deepcopy(gt)
    gt["annotations"][0]["id"] = 0  # the 32x32 GT, matched by two detections
    report = evaluate(gt, dets, ["segm"], workers=1)
    assert_matches_coco(report.metrics["segm"], run_cocoeval(gt, dets, "segm"))
    assert any("id 0" in w for w in report.warnings)
