"""Shared fixtures: data sets with the reference's corner cases, and comparison helpers."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
COCO30 = SHARED / "data" / "coco-val2017-30" / "instances_val2017_30.json"


def rle_str(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)] = 1
    return m


def edge_case_set() -> tuple[dict, list[dict]]:
    """A small hand-built set that hits the reference's corner cases (eval.md §1.8):

    crowd GT (uncompressed RLE) absorbing several detections, a GT ``ignore`` key (ignored by
    pycocotools, honoured by boundary-iou-api), GT areas exactly 1024 and 9216 (in two ranges at
    once), score ties within and across images, an image without detections, an image without
    GT, a category without GT and one without detections, 130 detections on one (image,
    category) so that maxDets cuts per group, an empty detection mask, masks touching the image
    border, a mask with a hole, a 3-pixel-thin object, a 500x375 image (d = 12.5 -> 12).
    """
    rng = np.random.default_rng(7)
    images = [
        {"id": 1, "height": 480, "width": 640},
        {"id": 2, "height": 375, "width": 500},
        {"id": 3, "height": 427, "width": 640},
        {"id": 5, "height": 200, "width": 300},  # GT only, no detections
        {"id": 8, "height": 240, "width": 320},  # detections only, no GT
    ]
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3, 7)]
    anns: list[dict] = []
    dets: list[dict] = []

    def add_gt(img, cat, mask, crowd=0, area=None, extra=None, as_poly=None):
        seg = uncompressed(mask) if crowd else (as_poly if as_poly is not None else rle_str(mask))
        a = {
            "id": len(anns) + 1,
            "image_id": img,
            "category_id": cat,
            "segmentation": seg,
            "area": float(mask.sum()) if area is None else area,
            "bbox": [
                float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask)))
            ],
            "iscrowd": crowd,
        }
        a.update(extra or {})
        anns.append(a)

    def add_det(img, cat, mask, score):
        dets.append(
            {"image_id": img, "category_id": cat, "segmentation": rle_str(mask), "score": score}
        )

    h, w = 480, 640
    # Image 1: a 32x32 GT (area 1024, small and medium), a 96x96 GT (9216), a border GT, a crowd.
    g1 = rect(h, w, 100, 100, 132, 132)
    add_gt(1, 1, g1, area=1024.0)
    g2 = rect(h, w, 300, 200, 396, 296)
    add_gt(1, 1, g2, area=9216.0)
    g3 = rect(h, w, 0, 400, 120, 480)  # touches left and bottom borders
    add_gt(1, 2, g3)
    crowd = rect(h, w, 450, 20, 630, 200)
    add_gt(1, 1, crowd, crowd=1)
    add_gt(1, 2, rect(h, w, 200, 20, 260, 60), extra={"ignore": 1})
    hole = rect(h, w, 20, 20, 90, 90)
    hole[40:70, 40:70] = 0
    add_gt(1, 3, hole)
    add_gt(1, 2, rect(h, w, 400, 350, 403, 470))  # 3 px thin
    # Detections: shifted copies, duplicates with tied scores, several inside the crowd.
    add_det(1, 1, rect(h, w, 102, 101, 134, 133), 0.9)
    add_det(1, 1, rect(h, w, 101, 100, 133, 131), 0.9)  # tie, duplicate of the same GT
    add_det(1, 1, rect(h, w, 305, 205, 400, 300), 0.8)
    add_det(1, 2, rect(h, w, 0, 398, 118, 480), 0.7)
    add_det(1, 2, rect(h, w, 202, 22, 258, 58), 0.65)  # on the "ignore" GT
    add_det(1, 2, rect(h, w, 400, 352, 404, 468), 0.6)
    add_det(1, 3, hole.copy(), 0.5)
    for k in range(4):
        add_det(1, 1, rect(h, w, 460 + 20 * k, 30, 480 + 20 * k, 60), 0.55)
    add_det(1, 7, rect(h, w, 10, 300, 50, 340), 0.95)  # category without GT
    add_det(1, 1, np.zeros((h, w), np.uint8), 0.3)  # empty mask
    # Image 2 (500x375): 130 detections of one category, scores with ties -> maxDets cuts.
    h2, w2 = 375, 500
    gts2 = []
    for i in range(6):
        m = rect(h2, w2, 20 + 75 * i, 50, 70 + 75 * i, 50 + 30 + 10 * i)
        add_gt(2, 1, m)
        gts2.append(m)
    for j in range(130):
        base = gts2[j % 6]
        dx, dy = int(rng.integers(-6, 7)), int(rng.integers(-6, 7))
        m = np.roll(np.roll(base, dx, axis=1), dy, axis=0)
        add_det(2, 1, m, float(np.round(rng.uniform(0.1, 0.9), 1)))
    add_gt(
        2, 2, rect(h2, w2, 100, 200, 300, 370), as_poly=[[100, 200, 100, 370, 300, 370, 300, 200]]
    )
    add_det(2, 2, rect(h2, w2, 110, 205, 300, 370), 0.9)
    # Image 3: a two-part polygon GT, GT of category 3 without detections, detections tied
    # with image 1's scores.
    h3, w3 = 427, 640
    add_gt(
        3,
        1,
        rect(h3, w3, 50, 60, 150, 160),
        as_poly=[
            [50.0, 60.0, 50.0, 160.0, 100.0, 160.0, 100.0, 60.0],
            [100.5, 60, 100.5, 160, 150, 160, 150, 60],
        ],
    )
    add_gt(3, 3, rect(h3, w3, 300, 100, 420, 260))
    add_det(3, 1, rect(h3, w3, 52, 58, 150, 158), 0.9)
    add_det(3, 1, rect(h3, w3, 200, 200, 260, 260), 0.9)
    # Image 5: GT only. Image 8: detections only.
    add_gt(5, 2, rect(200, 300, 10, 10, 80, 90))
    add_det(8, 2, rect(240, 320, 10, 10, 80, 90), 0.8)
    add_det(8, 1, rect(240, 320, 100, 10, 180, 90), 0.9)
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, dets


def with_boxes(results: list[dict]) -> list[dict]:
    """The results with each mask's box added (pycocotools then takes the box branch)."""
    out = copy.deepcopy(results)
    for d in out:
        d["bbox"] = [float(v) for v in mask_utils.toBbox(d["segmentation"])]
    return out


def perturbed_predictions(gt: dict, seed: int = 0, with_bbox: bool = False) -> list[dict]:
    """Detections made by perturbing each GT mask (shift, dilate or erode) plus false positives."""
    rng = np.random.default_rng(seed)
    imgs = {im["id"]: im for im in gt["images"]}
    cat_ids = [c["id"] for c in gt["categories"]]
    out = []
    for a in gt["annotations"]:
        im = imgs[a["image_id"]]
        h, w = im["height"], im["width"]
        seg = a["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, h, w)
        else:
            rle = seg
        m = mask_utils.decode(rle)
        for k in range(int(rng.integers(1, 3))):
            op = rng.integers(3)
            px = int(rng.integers(1, 6))
            kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
            if op == 0:
                p = np.roll(m, (int(rng.integers(-8, 9)), int(rng.integers(-8, 9))), axis=(0, 1))
            elif op == 1:
                p = cv2.dilate(m, kernel)
            else:
                p = cv2.erode(m, kernel)
            cat = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cat_ids))
            out.append(
                {
                    "image_id": a["image_id"],
                    "category_id": cat,
                    "segmentation": rle_str(p),
                    "score": float(np.round(rng.uniform(0.05, 1.0) / (k + 1), 3)),
                }
            )
    for im in gt["images"]:
        for _ in range(5):
            h, w = im["height"], im["width"]
            x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            out.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.choice(cat_ids)),
                    "segmentation": rle_str(
                        rect(
                            h, w, x, y, x + int(rng.integers(5, 120)), y + int(rng.integers(5, 120))
                        )
                    ),
                    "score": float(np.round(rng.uniform(0.0, 0.5), 2)),
                }
            )
    return with_boxes(out) if with_bbox else out


def assert_matches_coco(metrics, E, *, scores: bool = True) -> None:
    """rem's report for one IoU type equals a COCOeval run, bit for bit."""
    assert np.array_equal(metrics.array("precision"), E.eval["precision"])
    assert np.array_equal(metrics.array("recall"), E.eval["recall"])
    if scores:
        assert np.array_equal(metrics.array("scores"), E.eval["scores"])
    assert metrics.reference_stats == [float(v) for v in E.stats]


@pytest.fixture
def coco30() -> dict:
    if not COCO30.exists():
        pytest.skip(f"../shared test data not found: {COCO30}")
    import json

    return json.loads(COCO30.read_text())


def pytest_configure(config):
    # pycocotools' decode trips a NumPy 2 deprecation on every call; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pycocotools.*")
