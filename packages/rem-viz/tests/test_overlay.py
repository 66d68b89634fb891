"""Overlays of real COCO images against masks decoded by pycocotools itself."""

from __future__ import annotations

import contextlib
import io

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from rem_core.errors import RemError
from rem_viz import load_annotation_set, load_detection_set, overlay, overlay_from_set
from rem_viz.instances import Instance, label_text
from rem_viz.palette import category_color

ALPHA = 0.55


@pytest.fixture(scope="module")
def coco_api(coco30):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(coco30 / "instances_val2017_30.json"))


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def dilate3(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation by shifting (independent of OpenCV's morphology)."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def expected_overlay(image, masks, colors, exact=False):
    """Smallest mask on top, blended; outer 1-pixel rings black.

    With ``exact`` the unrounded float64 image comes back too, to tell rounding ties apart.
    """
    out = image.astype(np.float64)
    areas = [m.sum() for m in masks]
    order = sorted(range(len(masks)), key=lambda i: (-areas[i], i))
    top = np.full(image.shape[:2], -1)
    for i in order:
        top[masks[i]] = i
    for i in range(len(masks)):
        sel = top == i
        out[sel] = out[sel] * (1 - ALPHA) + np.asarray(colors[i], float) * ALPHA
    ring = np.zeros(image.shape[:2], bool)
    for m in masks:
        ring |= dilate3(m) & ~m
    out[ring] = 0
    rounded = np.rint(out).astype(np.uint8)
    return (rounded, out) if exact else rounded


@pytest.mark.parametrize("image_id", [139, 5001, 25986])
def test_overlay_matches_pycocotools_masks_pixel_for_pixel(coco30, coco_api, image_id):
    record = coco_api.imgs[image_id]
    image = read_rgb(coco30 / "val2017" / record["file_name"])
    anns = coco_api.imgToAnns[image_id]
    masks = [coco_api.annToMask(a).astype(bool) for a in anns]
    colors = [category_color(a["category_id"]) for a in anns]
    got = overlay(image, anns, alpha=ALPHA)
    want, unrounded = expected_overlay(image, masks, colors, exact=True)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1
    # Only values the float64 reference puts on a rounding tie (x.5) may round the other way.
    tie = np.abs(unrounded - np.floor(unrounded) - 0.5) < 1e-4
    assert not (diff > 0)[~tie].any()
    untouched = ~dilate3(np.any(masks, axis=0))
    assert (got[untouched] == image[untouched]).all()


def test_labels_follow_coco_rem_style(coco_api):
    crowd = next(a for a in coco_api.dataset["annotations"] if a["iscrowd"])
    names = {c["id"]: c["name"] for c in coco_api.dataset["categories"]}
    inst = Instance.from_record(crowd)
    assert label_text(inst, names) == f"{names[crowd['category_id']]}|crowd ({crowd['id']})"
    plain = next(a for a in coco_api.dataset["annotations"] if not a["iscrowd"])
    assert label_text(Instance.from_record(plain), names) == (
        f"{names[plain['category_id']]} ({plain['id']})"
    )
    det = {"image_id": 1, "category_id": 1, "score": 0.8731, "bbox": [0, 0, 2, 2]}
    assert label_text(Instance.from_record(det), names) == "person 0.87"


def test_class_filter_draws_only_that_class(coco30, coco_api):
    aset = load_annotation_set(coco30 / "instances_val2017_30.json")
    image_id = 139
    image = read_rgb(coco30 / "val2017" / coco_api.imgs[image_id]["file_name"])
    person = 1
    got = overlay_from_set(aset, image_id, coco30 / "val2017", category_ids={person}, alpha=ALPHA)
    anns = [a for a in coco_api.imgToAnns[image_id] if a["category_id"] == person]
    masks = [coco_api.annToMask(a).astype(bool) for a in anns]
    want = expected_overlay(image, masks, [category_color(person)] * len(masks))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_detections_below_the_score_threshold_are_not_drawn(coco30, coco_api, tmp_path):
    import json

    anns = coco_api.imgToAnns[139][:4]
    dets = [
        {
            "image_id": 139,
            "category_id": a["category_id"],
            "segmentation": coco_api.annToRLE(a),
            "score": s,
        }
        for a, s in zip(anns, (0.9, 0.2, 0.7, 0.1))
    ]
    for d in dets:
        d["segmentation"]["counts"] = d["segmentation"]["counts"].decode()
    results = tmp_path / "results.json"
    results.write_text(json.dumps(dets))
    aset = load_detection_set(results, coco30 / "instances_val2017_30.json", score_threshold=0.5)
    kept = aset.instances[139]
    assert [x.score for x in kept] == [0.9, 0.7]
    image = read_rgb(coco30 / "val2017" / coco_api.imgs[139]["file_name"])
    got = overlay(image, kept, alpha=ALPHA)
    masks = [coco_api.annToMask(a).astype(bool) for a in (anns[0], anns[2])]
    want = expected_overlay(image, masks, [category_color(anns[i]["category_id"]) for i in (0, 2)])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_unreadable_segmentation_raises_a_rem_error():
    image = np.zeros((10, 10, 3), np.uint8)
    bad = {
        "id": 4,
        "image_id": 1,
        "category_id": 1,
        "segmentation": {"size": [20, 20], "counts": [400]},
    }
    with pytest.raises(RemError, match="annotation 4: RLE size"):
        overlay(image, [bad])


def test_box_only_detection_is_drawn_as_its_rectangle():
    image = np.zeros((10, 10, 3), np.uint8)
    det = {"image_id": 1, "category_id": 2, "score": 0.9, "bbox": [2, 3, 4, 5]}
    got = overlay(image, [det], alpha=1.0, outline=0)
    filled = np.any(got != 0, axis=2)
    expected = np.zeros((10, 10), bool)
    expected[3:8, 2:6] = True
    assert (filled == expected).all()
