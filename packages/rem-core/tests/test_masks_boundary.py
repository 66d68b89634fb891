"""Boundary bands against an independent iterated erosion (boundary-iou-api's algorithm)."""

from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as coco_mask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from rem_core import masks
from rem_core.errors import RemError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def band_by_iterated_erosion(mask: np.ndarray, ratio: float) -> np.ndarray:
    """mask_to_boundary as published: zero-pad by 1, erode by 3x3 d times, crop, subtract.

    Written with scipy (not OpenCV) and a loop of single 3x3 erosions, so it shares nothing with
    the implementation under test except the definition.
    """
    h, w = mask.shape
    d = max(1, round(ratio * np.sqrt(h**2 + w**2)))
    eroded = np.pad(mask.astype(bool), 1)
    for _ in range(d):
        # border_value=1: beyond the one-pixel zero pad nothing erodes (OpenCV's default border).
        eroded = ndimage.binary_erosion(eroded, structure=np.ones((3, 3)), border_value=1)
    return (mask.astype(bool) & ~eroded[1:-1, 1:-1]).astype(np.uint8)


@st.composite
def masks_and_ratios(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["noise", "blocks", "full", "empty"]))
    if kind == "noise":
        mask = draw(arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    elif kind == "blocks":
        cell = draw(st.integers(3, 12))
        grid = draw(arrays(np.uint8, (-(-h // cell), -(-w // cell)), elements=st.integers(0, 1)))
        mask = np.kron(grid, np.ones((cell, cell), dtype=np.uint8))[:h, :w].copy()
    else:
        mask = np.full((h, w), kind == "full", dtype=np.uint8)
    # Ratios large enough to give d from 1 to ~15 on these small images.
    ratio = draw(st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2, 0.3]))
    return mask, ratio


@SETTINGS
@given(masks_and_ratios())
def test_band_matches_iterated_erosion(case):
    mask, ratio = case
    expected = band_by_iterated_erosion(mask, ratio)
    band = masks.boundary_band(mask, dilation_ratio=ratio)
    assert band.dtype == np.uint8
    assert np.array_equal(band, expected)
    rle = masks.boundary_rle(masks.to_uncompressed(masks.encode(mask)), dilation_ratio=ratio)
    out = coco_mask.encode(np.asfortranarray(expected))
    assert rle == {"size": list(mask.shape), "counts": out["counts"].decode("ascii")}
    assert np.array_equal(masks.boundary_bands(mask[None], ratio)[0], expected)


def test_band_of_coco_sized_image_matches_reference():
    # Real dilation width d = 16 on a 480x640 image, shapes touching the border and with a hole.
    rng = np.random.default_rng(3)
    mask = np.zeros((480, 640), dtype=np.uint8)
    mask[100:300, 0:250] = 1
    mask[150:200, 50:120] = 0  # hole: its rim is boundary too
    mask[400:480, 500:640] = 1
    mask[20:24, 300:600] = 1  # thinner than 2d: all band
    mask |= (rng.random((480, 640)) < 0.002).astype(np.uint8)
    expected = band_by_iterated_erosion(mask, 0.02)
    assert np.array_equal(masks.boundary_band(mask), expected)
    assert np.array_equal(masks.decode(masks.boundary_rle(masks.encode(mask))), expected)
    many = masks.boundary_rles([masks.encode(mask), masks.encode(np.zeros_like(mask))])
    assert masks.area(many[0]) == int(expected.sum()) and masks.area(many[1]) == 0


@pytest.mark.parametrize(
    ("h", "w", "d"),
    [(480, 640, 16), (427, 640, 15), (375, 500, 12), (640, 640, 18), (1, 1, 1), (10, 10, 1)],
)
def test_dilation_width_examples(h, w, d):
    assert masks.dilation_width(h, w) == d
    # The reference formula, written out: round(ratio * diagonal), at least 1.
    assert d == max(1, round(0.02 * np.sqrt(h**2 + w**2)))


def test_dilation_width_rounds_half_to_even():
    assert 0.02 * math.sqrt(375**2 + 500**2) == 12.5
    assert masks.dilation_width(375, 500) == 12
    assert masks.dilation_width(375, 500, ratio=0.0) == 1
    with pytest.raises(RemError, match="must be >= 0"):
        masks.dilation_width(10, 10, ratio=-0.1)


def test_hand_cases_full_squares():
    # 4x4 full, d=1: the 2x2 centre survives the erosion, so the band is the 12-pixel ring.
    band = masks.boundary_band(np.ones((4, 4), np.uint8), dilation_ratio=0.2)  # d = round(1.13)
    expected = np.ones((4, 4), np.uint8)
    expected[1:3, 1:3] = 0
    assert np.array_equal(band, expected)
    # 5x5 full, d=1: ring of 16; d=2: only the centre's 5x5 window fits, so 24 pixels.
    assert int(masks.boundary_band(np.ones((5, 5)), dilation_ratio=0.15).sum()) == 16  # d=1
    band2 = masks.boundary_band(np.ones((5, 5)), dilation_ratio=0.3)  # d = round(2.12) = 2
    assert int(band2.sum()) == 24 and band2[2, 2] == 0
    # A ring (5x5 with a hole in the middle) is all boundary at d=1: the hole's rim counts.
    ring = np.ones((5, 5), np.uint8)
    ring[2, 2] = 0
    assert np.array_equal(masks.boundary_band(ring, dilation_ratio=0.15), ring)
    # Empty stays empty.
    assert masks.boundary_band(np.zeros((5, 5))).sum() == 0


def test_band_is_inside_mask_and_boundary_iou_not_above_mask_iou():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    for _ in range(20):
        cx, cy, r = rng.uniform(30, 130), rng.uniform(30, 90), rng.uniform(5, 40)
        gt = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2).astype(np.uint8)
        dt = (xx - cx - rng.uniform(-6, 6)) ** 2 + (yy - cy) ** 2 < (r * 1.1) ** 2
        g, d = masks.encode(gt), masks.encode(dt)
        bg, bd = masks.boundary_rle(g), masks.boundary_rle(d)
        assert masks.area(masks.merge([bg, g], intersect=True)) == masks.area(bg)
        assert masks.iou([bd], [bg])[0, 0] <= masks.iou([d], [g])[0, 0] + 1e-12


def test_band_rejects_non_2d():
    with pytest.raises(RemError, match="2-D"):
        masks.boundary_band(np.zeros((2, 3, 4)))
    with pytest.raises(RemError, match="3-D"):
        masks.boundary_bands(np.zeros((3, 4)))
    assert masks.boundary_bands(np.zeros((0, 5, 5))).shape == (0, 5, 5)


@pytest.mark.parametrize(
    "counts",
    [
        [2, 3, 0, 2, 9],  # an empty zero run inside: not canonical
        [0, 0, 5, 11],  # an empty first one-run
        [0, 16],  # full
        [16],  # empty
        [1, 14, 1],
    ],
)
def test_non_canonical_runs_give_the_canonical_band(counts):
    rle = {"size": [4, 4], "counts": counts}
    mask = masks.decode(rle)
    for ratio in (0.02, 0.4):
        expected = band_by_iterated_erosion(np.ascontiguousarray(mask), ratio)
        out = coco_mask.encode(np.asfortranarray(expected))
        assert masks.boundary_rle(rle, ratio)["counts"] == out["counts"].decode("ascii")
