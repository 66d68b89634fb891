"""Boundary AP equals the boundary-iou-api algorithm (eval.md §2), re-derived in references.py
with full-image masks and ``cv2.erode(iterations=d)``; bands equal the reference's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import assert_matches_coco, edge_case_set, perturbed_predictions, rle_str, with_boxes
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from references import mask_to_boundary, run_cocoeval

from rem_core.masks import dilation_width, string_to_counts
from rem_eval import evaluate
from rem_eval.bands import band_of_crop, crop_of_runs
from rem_eval.synthetic import make_eval_set


@pytest.mark.parametrize(
    ("h", "w", "d"), [(480, 640, 16), (427, 640, 15), (375, 500, 12), (640, 640, 18), (10, 10, 1)]
)
def test_dilation_width_examples(h, w, d):
    assert dilation_width(h, w) == d


def _band_full(mask: np.ndarray, ratio: float) -> np.ndarray:
    h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    band = band_of_crop(
        crop_of_runs(string_to_counts(rle["counts"]), h), dilation_width(h, w, ratio)
    )
    out = np.zeros((w, h), np.uint8)
    if band.pix.size:
        out[band.x0 : band.x0 + band.pix.shape[0], band.y0 : band.y0 + band.pix.shape[1]] = band.pix
    return out.T


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(3, 70),
    w=st.integers(3, 70),
    seed=st.integers(0, 10_000),
    ratio=st.sampled_from([0.005, 0.02, 0.05, 0.2]),
)
def test_band_equals_iterated_erosion(h, w, seed, ratio):
    """Random blobs, holes, border contact, thin parts: crop + one square erosion with a zero
    border gives the reference's padded, iterated 3x3 erosion exactly."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5))
        ax, ay = int(rng.integers(1, w)), int(rng.integers(1, h))
        cv2.ellipse(mask, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    if rng.random() < 0.3:
        mask[int(rng.integers(0, h)) :, int(rng.integers(0, w))] = 1  # a thin line to the border
    if rng.random() < 0.3:
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        mask[y : y + 3, x : x + 3] = 0  # a hole
    assert np.array_equal(_band_full(mask, ratio), mask_to_boundary(mask, ratio))


def test_thin_objects_have_band_equal_to_mask():
    mask = np.zeros((480, 640), np.uint8)
    mask[100:120, 50:600] = 1  # 20 px thick < 2d + 1 = 33
    assert np.array_equal(_band_full(mask, 0.02), mask)


@pytest.mark.parametrize("boxes", [False, True], ids=["masks-only", "with-bbox"])
def test_edge_cases(boxes):
    gt, dets = edge_case_set()
    if boxes:
        dets = with_boxes(dets)
    report = evaluate(gt, dets, ["boundary"], workers=1)
    assert_matches_coco(report.metrics["boundary"], run_cocoeval(gt, dets, "boundary"))


@pytest.mark.parametrize("ratio", [0.005, 0.05])
def test_dilation_ratio(ratio):
    gt, dets = edge_case_set()
    report = evaluate(gt, dets, ["boundary"], workers=1, dilation_ratio=ratio)
    E = run_cocoeval(gt, dets, "boundary", dilation_ratio=ratio)
    assert_matches_coco(report.metrics["boundary"], E)


def test_synthetic_set_and_segm_shared_pass():
    s = make_eval_set(20, seed=11, dets_per_image=30)
    report = evaluate(s.gt, s.results, ["segm", "boundary"], workers=1)
    assert_matches_coco(report.metrics["boundary"], run_cocoeval(s.gt, s.results, "boundary"))
    assert_matches_coco(report.metrics["segm"], run_cocoeval(s.gt, s.results, "segm"))
    # Boundary IoU never exceeds mask IoU, so neither can boundary AP at any threshold.
    seg, bnd = report.metrics["segm"].stats, report.metrics["boundary"].stats
    assert all(bnd[k] <= seg[k] for k in ("AP", "AP50", "AP75"))


def test_real_coco_sample(coco30):
    dets = perturbed_predictions(coco30, seed=5)
    report = evaluate(coco30, dets, ["boundary"], workers=1)
    assert_matches_coco(report.metrics["boundary"], run_cocoeval(coco30, dets, "boundary"))


def test_boundary_iou_at_most_mask_iou_on_pairs():
    h, w = 200, 300
    a = np.zeros((h, w), np.uint8)
    b = np.zeros((h, w), np.uint8)
    cv2.circle(a, (150, 100), 60, 1, -1)
    cv2.circle(b, (160, 105), 62, 1, -1)
    m = mask_utils.iou([rle_str(a)], [rle_str(b)], [0])[0, 0]
    ba, bb = mask_to_boundary(a), mask_to_boundary(b)
    bi = (ba & bb).sum() / (ba | bb).sum()
    assert bi < m
