"""VOC-style mask AP (``evaluate_voc``, ``rem eval --voc``): hand-computed cases and a
re-derivation of the classic PASCAL devkit loop (per-class ``det`` flags, ``difficult``), plus
``--iou-thrs`` against pycocotools at CIM's thresholds."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import rect, rle_str
from pycocotools.coco import COCO
from references import run_cocoeval

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_core.schemas import EvalComparison, EvalReport
from rem_eval import VOC_IOU_THRS, evaluate_voc, voc_ap
from rem_eval.synthetic import make_eval_set

H, W = 10, 20
A, B = rect(H, W, 0, 0, 5, 4), rect(H, W, 10, 0, 15, 5)  # 20 and 25 pixels


def _gt(crowd_on_class_2: bool = False) -> dict:
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle_str(A), "area": 20},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": rle_str(B), "area": 25},
        {"id": 3, "image_id": 1, "category_id": 2, "segmentation": rle_str(B), "area": 25},
    ]
    anns[2]["iscrowd"] = int(crowd_on_class_2)
    return {
        "images": [{"id": 1, "height": H, "width": W}],
        "categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}],
        "annotations": anns,
    }


def _det(mask: np.ndarray, score: float, cat: int = 1) -> dict:
    return {"image_id": 1, "category_id": cat, "score": score, "segmentation": rle_str(mask)}


DETS = [
    _det(A, 0.9),  # TP
    _det(rect(H, W, 0, 0, 5, 3), 0.8),  # IoU 15/20 = 0.75 with A, already taken: duplicate FP
    _det(rect(H, W, 10, 0, 15, 4), 0.7),  # IoU 20/25 = 0.8 with B: TP up to threshold 0.8
    _det(B, 0.5, cat=2),  # class 2: perfect
]


def test_voc_ap_by_hand():
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(recall, precision) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # 11-point: recall >= 0..0.5 -> best precision 1 (6 points), >= 0.6..1 -> 2/3 (5 points).
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert voc_ap(np.array([0.25]), np.array([1.0]), use_07_metric=True) == pytest.approx(3 / 11)


def test_map_at_each_threshold_by_hand():
    report = evaluate_voc(_gt(), DETS)
    m = report.metrics["segm"]
    assert m.protocol == "voc" and list(m.stats) == ["AP25", "AP50", "AP70", "AP75"]
    class_1 = 0.5 + 0.5 * 2 / 3  # TP, FP, TP over 2 instances
    for key in m.stats:
        assert m.stats[key] == pytest.approx((class_1 + 1.0) / 2)
    assert m.reference_stat_names == list(m.stats) and m.reference_stats == list(m.stats.values())
    rows = {c.id: c for c in m.per_category}
    assert rows[1].ap_at["AP75"] == pytest.approx(class_1) and rows[2].ap50 == 1.0
    assert (rows[1].num_gt, rows[1].num_det, rows[1].ap) == (2, 3, None)
    # IoU exactly 0.8 is not above 0.8 (the devkit compares with >): the third detection is FP.
    at_80 = evaluate_voc(_gt(), DETS, iou_thrs=(0.8,)).metrics["segm"]
    assert {c.id: c.ap_at["AP80"] for c in at_80.per_category} == {1: 0.5, 2: 1.0}
    # 11-point at 0.5: class 1 precision 1 up to recall 0.5, 2/3 after.
    seven = evaluate_voc(_gt(), DETS, iou_thrs=(0.5,), use_07_metric=True).metrics["segm"]
    assert seven.stats["AP50"] == pytest.approx(((6 + 5 * 2 / 3) / 11 + 1.0) / 2)


def test_ignored_instances_are_neither_matched_nor_counted():
    # Class 2's only instance is a crowd: the class has no AP, its detection is not an FP.
    m = evaluate_voc(_gt(crowd_on_class_2=True), DETS).metrics["segm"]
    assert {c.id: c.ap_at["AP50"] for c in m.per_category} == {1: pytest.approx(5 / 6), 2: None}
    assert m.stats["AP50"] == pytest.approx(5 / 6)
    # An ignored instance sits between ranks: the detection on it drops out of the list.
    gt = _gt()
    gt["annotations"][1]["ignore"] = 1  # B of class 1
    dets = [_det(A, 0.9), _det(rect(H, W, 0, 5, 8, 9), 0.85), _det(B, 0.8)]
    rows = {c.id: c for c in evaluate_voc(gt, dets).metrics["segm"].per_category}
    assert rows[1].num_gt == 1 and rows[1].ap_at["AP50"] == 1.0  # TP, FP, (ignored)
    # Counting B (only iscrowd ignored): TP, FP, TP over 2 instances.
    iscrowd_only = evaluate_voc(gt, dets, gt_ignore="iscrowd").metrics["segm"]
    assert iscrowd_only.per_category[0].ap_at["AP50"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_no_detections_and_unknown_inputs():
    m = evaluate_voc(_gt(), []).metrics["segm"]
    assert m.stats == {k: 0.0 for k in ("AP25", "AP50", "AP70", "AP75")}
    with pytest.raises(RemError, match=r"image 9 is not in the ground truth"):
        evaluate_voc(_gt(), [{**DETS[0], "image_id": 9}])
    with pytest.raises(RemError, match=r"RLE size \[5, 5\] does not match image 1"):
        evaluate_voc(_gt(), [_det(np.ones((5, 5), np.uint8), 0.3)])
    with pytest.raises(RemError, match=r"thresholds must lie in \[0, 1\)"):
        evaluate_voc(_gt(), DETS, iou_thrs=(0.5, 1.5))


# ------------------------------------------------------- the classic devkit loop, re-derived


def _devkit_reference(gt: dict, dets: list[dict], thr: float, use_07: bool) -> dict[int, float]:
    """Per-class AP as PASCAL's voc_eval computes it, with masks decoded to numpy arrays."""
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    out: dict[int, float] = {}
    for cat in sorted(coco.cats):
        records: dict[int, dict] = {}
        npos = 0
        for img in coco.imgs:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img], catIds=[cat]))
            difficult = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
            records[img] = {
                "masks": [coco.annToMask(a).astype(bool) for a in anns],
                "difficult": difficult,
                "det": [False] * len(anns),
            }
            npos += int((~difficult).sum())
        if npos == 0:
            continue
        mine = [d for d in dets if d["category_id"] == cat]
        order = np.argsort([-d["score"] for d in mine], kind="stable")
        tp, fp = np.zeros(len(mine)), np.zeros(len(mine))
        for rank, i in enumerate(order):
            d = mine[i]
            rec = records[d["image_id"]]
            info = coco.imgs[d["image_id"]]
            dm = _decode(d["segmentation"], info["height"], info["width"])
            ovmax, jmax = -np.inf, -1
            for j, gm in enumerate(rec["masks"]):
                inter = np.logical_and(dm, gm).sum()
                union = np.logical_or(dm, gm).sum()
                ov = inter / union if union else 0.0
                if ov > ovmax:
                    ovmax, jmax = ov, j
            if ovmax > thr:
                if rec["difficult"][jmax]:
                    continue
                if not rec["det"][jmax]:
                    tp[rank] = 1.0
                    rec["det"][jmax] = True
                else:
                    fp[rank] = 1.0
            else:
                fp[rank] = 1.0
        kept = (tp + fp) > 0  # difficult matches were skipped
        ctp, cfp = np.cumsum(tp[kept]), np.cumsum(fp[kept])
        rec_, prec = ctp / npos, ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        out[cat] = _devkit_ap(rec_, prec, use_07)
    return out


def _decode(rle: dict, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    assert list(rle["size"]) == [h, w]
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"]}).astype(bool)


def _devkit_ap(rec: np.ndarray, prec: np.ndarray, use_07: bool) -> float:
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@pytest.mark.parametrize(("seed", "use_07"), [(0, False), (1, True)])
def test_equals_the_devkit_loop_on_synthetic_sets(seed, use_07):
    s = make_eval_set(6, seed=seed, dets_per_image=30, crowd_fraction=0.1, score_decimals=2)
    report = evaluate_voc(
        s.gt, s.results, iou_thrs=(0.3, 0.5, 0.75), use_07_metric=use_07, gt_ignore="iscrowd"
    )
    m = report.metrics["segm"]
    for thr, key in ((0.3, "AP30"), (0.5, "AP50"), (0.75, "AP75")):
        ref = _devkit_reference(s.gt, s.results, thr, use_07)
        ours = {c.id: c.ap_at[key] for c in m.per_category if c.ap_at[key] is not None}
        assert ours.keys() == ref.keys() and len(ref) > 5
        for cat, ap in ref.items():
            assert ours[cat] == pytest.approx(ap, abs=1e-12), (thr, cat)
        assert m.stats[key] == pytest.approx(np.mean(list(ref.values())), abs=1e-12)


# ------------------------------------------------------------------------------------ CLI


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def files(tmp_path):
    g, d = tmp_path / "gt.json", tmp_path / "dets.json"
    g.write_text(json.dumps(_gt()))
    d.write_text(json.dumps(DETS))
    return g, d


def test_cli_voc_table_and_json(files, tmp_path):
    g, d = files
    out = tmp_path / "voc.json"
    res = run("eval", g, d, "--voc", "--per-class", "--json", out)
    assert res.exit_code == 0, res.output
    assert "segm (VOC)" in res.output and "AP70" in res.output and "segm AP25" in res.output
    report = EvalReport.model_validate_json(out.read_text())
    assert report.metrics["segm"].params["iou_thrs"] == list(VOC_IOU_THRS)
    assert report.metrics["segm"].stats["AP50"] == pytest.approx((5 / 6 + 1) / 2)
    assert f"{100 * (5 / 6 + 1) / 2:.1f}" in res.output
    seven = tmp_path / "voc07.json"
    res = run("eval", g, d, "--voc", "--use-07-metric", "--iou-thrs", "0.5", "--json", seven)
    stats = EvalReport.model_validate_json(seven.read_text()).metrics["segm"].stats
    assert res.exit_code == 0 and stats == {"AP50": pytest.approx(((6 + 10 / 3) / 11 + 1) / 2)}
    both = tmp_path / "both.json"
    assert run("eval", g, g, d, "--voc", "--json", both).exit_code == 0
    comp = EvalComparison.model_validate_json(both.read_text())
    assert [r.metrics["segm"].stats for r in comp.reports] == [report.metrics["segm"].stats] * 2


def test_cli_iou_thrs_gives_pycocotools_at_cims_thresholds(tmp_path):
    """CIM's published VOC numbers come from COCOeval with iouThrs [.25, .5, .7, .75]."""
    s = make_eval_set(5, seed=3, dets_per_image=20)
    g, d, out = tmp_path / "g.json", tmp_path / "d.json", tmp_path / "r.json"
    g.write_text(json.dumps(s.gt))
    d.write_text(json.dumps(s.results))
    assert run("eval", g, d, "--iou-thrs", "0.25,0.5,0.7,0.75", "--json", out).exit_code == 0
    stats = EvalReport.model_validate_json(out.read_text()).metrics["segm"].stats

    def cim_thresholds(params):
        params.iouThrs = np.array(VOC_IOU_THRS)

    E = run_cocoeval(s.gt, s.results, "segm", setup=cim_thresholds)
    for t, key in enumerate(("AP25", "AP50", "AP70", "AP75")):
        p = E.eval["precision"][t, :, :, 0, -1]
        assert stats[key] == np.mean(p[p > -1]), key


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--use-07-metric"], "error: --use-07-metric: --use-07-metric needs --voc"),
        (
            ["--voc", "--lvis"],
            "error: --lvis: --lvis does not apply to --voc",
        ),
        (
            ["--voc", "-t", "boundary"],
            "error: --iou-type: --voc evaluates masks: use --iou-type segm",
        ),
        (
            ["--iou-thrs", "a,b"],
            "error: --iou-thrs: expected numbers separated by commas, got 'a,b'",
        ),
        (["--voc", "--iou-thrs", "1"], "error: VOC IoU thresholds must lie in [0, 1), got [1.0]"),
    ],
)
def test_cli_voc_errors_are_one_line(files, args, line):
    g, d = files
    res = CliRunner().invoke(cli, ["eval", str(g), str(d), *args])
    assert res.exit_code == 2 and res.output.strip() == line
