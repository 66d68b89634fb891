"""Comparisons checked against pycocotools, the Boundary IoU definition and known edits."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as coco_mask

from rem_core.cli.main import cli
from rem_core.io import read_json
from rem_viz import compare_sets, difference_view, load_annotation_set, write_comparison
from rem_viz.crops import MaskCrop
from rem_viz.difference import ADDED, KEPT, REMOVED
from rem_viz.matching import match_by_iou


def reference_rle(seg, h, w):
    if isinstance(seg, list):
        return coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return coco_mask.frPyObjects(seg, h, w)
    return {"size": seg["size"], "counts": seg["counts"].encode()}


def reference_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api's band, written from its definition (eval.md §2.1)."""
    h, w = mask.shape
    d = max(1, round(ratio * np.sqrt(h * h + w * w)))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
    return mask.astype(np.uint8) - eroded


def test_coarse_vs_exact_pairs_by_id_with_pycocotools_iou(synth):
    exact, coarse = read_json(synth.exact), read_json(synth.coarse)
    comparison = compare_sets(
        load_annotation_set(synth.coarse), load_annotation_set(synth.exact), match="id", workers=1
    )
    changes = {c.ann_id_a: c for c in comparison.changes}
    assert len(changes) == len(exact["annotations"])
    h, w = exact["images"][0]["height"], exact["images"][0]["width"]
    by_id = {a["id"]: a for a in exact["annotations"]}
    recorded = {r["id"]: r["iou"] for r in coarse["info"]["rem_synth"]["per_annotation"]}
    for ann in coarse["annotations"]:
        c = changes[ann["id"]]
        assert c.status == "matched" and c.ann_id_b == ann["id"]
        ra = reference_rle(ann["segmentation"], h, w)
        rb = reference_rle(by_id[ann["id"]]["segmentation"], h, w)
        assert c.mask_iou == pytest.approx(coco_mask.iou([rb], [ra], [0])[0, 0], abs=1e-12)
        if ann["id"] in recorded:  # the generator's own record of the coarse IoU
            assert c.mask_iou == pytest.approx(recorded[ann["id"]], abs=5e-5)
        ma, mb = coco_mask.decode(ra).astype(bool), coco_mask.decode(rb).astype(bool)
        assert c.added_px == int((mb & ~ma).sum()) and c.removed_px == int((ma & ~mb).sum())
        ba, bb = reference_boundary(ma).astype(bool), reference_boundary(mb).astype(bool)
        union = (ba | bb).sum()
        assert c.boundary_iou == pytest.approx((ba & bb).sum() / union if union else 0, abs=1e-12)


def test_iou_matching_finds_the_same_pairs_as_ids_on_the_synthetic_sample(synth):
    a, b = load_annotation_set(synth.coarse), load_annotation_set(synth.exact)
    by_iou = compare_sets(a, b, match="iou", workers=1)
    assert all(c.status == "matched" for c in by_iou.changes)
    assert all(c.ann_id_a == c.ann_id_b for c in by_iou.changes)


def test_greedy_matching_takes_the_best_overlap_first():
    def rle(box):
        m = np.zeros((20, 20), np.uint8, order="F")
        y0, x0, y1, x1 = box
        m[y0:y1, x0:x1] = 1
        r = coco_mask.encode(m)
        return {"size": r["size"], "counts": r["counts"].decode()}

    # B0 overlaps A0 a little and A1 a lot; A1 must get B0, and A0 takes B1.
    a = [rle((0, 0, 10, 10)), rle((0, 6, 10, 16))]
    b = [rle((0, 7, 10, 17)), rle((1, 0, 10, 9))]
    assert match_by_iou(a, [1, 1], b, [1, 1]) == [(0, 1), (1, 0)]
    assert match_by_iou(a, [1, 2], b, [2, 1]) == [(0, 1), (1, 0)]
    assert match_by_iou(a, [1, 1], b, [2, 2]) == []  # never across categories
    assert match_by_iou(a[:1], [1], b[:1], [1], min_iou=0.5) == []


@pytest.fixture(scope="module")
def edited(coco30, tmp_path_factory):
    """COCO-30 with every non-crowd person dilated by 3 px, one tv removed, one cow added."""
    d = read_json(coco30 / "instances_val2017_30.json")
    imgs = {i["id"]: i for i in d["images"]}
    cats = {c["name"]: c["id"] for c in d["categories"]}
    removed = next(a for a in d["annotations"] if a["category_id"] == cats["tv"])
    added_px = 0
    out = []
    for a in d["annotations"]:
        if a is removed:
            continue
        if a["category_id"] == cats["person"] and not a["iscrowd"]:
            im = imgs[a["image_id"]]
            m = coco_mask.decode(reference_rle(a["segmentation"], im["height"], im["width"]))
            grown = cv2.dilate(m, np.ones((7, 7), np.uint8))
            added_px += int((grown & ~m.astype(bool)).sum())
            r = coco_mask.encode(np.asfortranarray(grown))
            a = {**a, "segmentation": {"size": r["size"], "counts": r["counts"].decode()}}
        out.append(a)
    new = {
        "id": 10**9,
        "image_id": 139,
        "category_id": cats["cow"],
        "iscrowd": 0,
        "segmentation": [[10, 10, 60, 10, 60, 40, 10, 40]],
        "area": 1500.0,
        "bbox": [10, 10, 50, 30],
    }
    out.append(new)
    path = tmp_path_factory.mktemp("edited") / "edited.json"
    path.write_text(json.dumps({**d, "annotations": out}))
    return {"path": path, "removed": removed, "added_px": added_px, "cats": cats}


def test_summary_counts_the_edits_per_category(coco30, edited, tmp_path):
    a = load_annotation_set(coco30 / "instances_val2017_30.json")
    b = load_annotation_set(edited["path"])
    comparison = compare_sets(a, b, workers=1)
    paths = write_comparison(comparison, tmp_path)
    summary = json.loads(paths["summary"].read_text())
    rows = {r["category"]: r for r in summary["categories"]}
    person = rows["person"]
    assert person["pixels_added"] == edited["added_px"]
    assert person["pixels_removed"] == 0
    assert person["matched"] == person["instances_a"] == person["instances_b"]
    assert person["mean_mask_iou"] < 0.95
    assert rows["tv"]["removed"] == 1 and rows["tv"]["added"] == 0
    assert rows["tv"]["pixels_removed"] > 0
    assert rows["cow"]["added"] == 1 and rows["cow"]["pixels_added"] == 1500
    for name, r in rows.items():
        if name not in ("person", "tv", "cow"):
            assert r["changed_fraction"] == 0.0 and r["mean_mask_iou"] == 1.0, name
    assert summary["overall"]["removed"] == 1 and summary["overall"]["added"] == 1
    with paths["categories"].open() as f:
        csv_rows = {r["category"]: r for r in csv.DictReader(f)}
    assert csv_rows.keys() == rows.keys()
    assert int(csv_rows["person"]["pixels_added"]) == edited["added_px"]
    with paths["instances"].open() as f:
        inst = list(csv.DictReader(f))
    assert len(inst) == len(comparison.changes)
    gone = [r for r in inst if r["status"] == "removed"]
    assert [int(r["ann_id_a"]) for r in gone] == [edited["removed"]["id"]]
    assert gone[0]["mask_iou"] == ""


def test_compare_cli_draws_panels_and_lists_missing_images(coco30, edited, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("000000000139.jpg", "000000005001.jpg"):
        shutil.copy(coco30 / "val2017" / name, images / name)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        cli,
        [
            "compare",
            str(coco30 / "instances_val2017_30.json"),
            str(edited["path"]),
            "--image-dir",
            str(images),
            "--out",
            str(out),
            "--html",
            "--workers",
            "2",
            "--name-a",
            "coco",
            "--name-b",
            "edited",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: 28 images missing from" in result.output
    assert "compared 30 images" in result.output  # masks need no pixels
    assert sorted(p.name for p in (out / "images").iterdir()) == ["139.jpg", "5001.jpg"]
    panel = cv2.imread(str(out / "images" / "139.jpg"))
    assert panel.shape[1] > 3 * 640  # A | B | difference side by side
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"]["drawn"] == 2 and len(summary["images"]["missing"]) == 28
    assert f"report: {out / 'index.html'}" in result.output


def test_compare_cli_errors(coco30, edited, tmp_path):
    args = [
        "compare",
        str(coco30 / "instances_val2017_30.json"),
        str(edited["path"]),
        "--out",
        str(tmp_path / "x"),
    ]
    result = CliRunner().invoke(cli, [*args, "--html"])
    assert result.exit_code == 2 and "--html needs --image-dir" in result.output
    result = CliRunner().invoke(cli, [*args, "--class-name", "unicorn"])
    assert result.exit_code == 2 and "unknown category name 'unicorn'" in result.output
    assert "valid names (80)" in result.output


def test_difference_view_colours_added_and_removed_pixels():
    image = np.full((12, 14, 3), 120, np.uint8)
    a = np.zeros((12, 14), bool)
    a[2:8, 1:7] = True
    b = np.zeros((12, 14), bool)
    b[2:8, 5:11] = True  # B's white outline covers rows 1-8, columns 4-11 around it
    view = difference_view(image, [(MaskCrop.from_full(a), MaskCrop.from_full(b))])
    grey = view[11, 13].astype(float)  # background: the dimmed image only

    def blended(color, alpha):
        return np.rint(grey * (1 - alpha) + np.asarray(color) * alpha)

    assert (view[4, 2] == blended(REMOVED, 0.85)).all()  # in A only
    assert (view[4, 6] == blended(KEPT, 0.45)).all()  # in both
    assert (view[4, 9] == blended(ADDED, 0.85)).all()  # in B only
    assert (view[4, 4] == 255).all()  # B's outline
    assert (view[0, 0] == view[11, 13]).all()


def test_images_that_cannot_be_drawn_are_still_compared(coco30, edited, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(coco30 / "val2017" / "000000000139.jpg", images / "000000000139.jpg")
    (images / "000000005001.jpg").write_bytes(b"\xff\xd8 truncated")
    a = load_annotation_set(coco30 / "instances_val2017_30.json")
    b = load_annotation_set(edited["path"])
    comparison = compare_sets(
        a, b, image_dir=images, out_dir=tmp_path / "o", image_ids=[139, 5001], workers=1
    )
    drawn = {i.image_id: i for i in comparison.images}
    assert drawn[139].composite == "images/139.jpg" and drawn[139].failure is None
    assert drawn[5001].composite is None
    assert drawn[5001].failure == "cannot be decoded as an image"
    assert len(drawn[5001].changes) == len(a.instances[5001])  # measured all the same
    summary = comparison.summary()
    assert summary["images"]["not_drawn"] == [
        {"image_id": 5001, "reason": "cannot be decoded as an image"}
    ]
