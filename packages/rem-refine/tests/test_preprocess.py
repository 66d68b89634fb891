"""Stage-1 inputs at the 1024 scale (refine.md §1.3-1.5), against hand-worked cases and
pycocotools: resize arithmetic, source masks from every segmentation form, boxes, RLE output,
small-region cleanup, random draws, box-only name lookup."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from rem_core.masks import encode, to_uncompressed
from rem_refine.box_only import DEFAULT_BOX_ONLY_NAMES, fold_name, resolve_box_only, split_names
from rem_refine.draws import id_key, trial_draws
from rem_refine.preprocess import (
    SourceMaskError,
    noisy_boxes,
    resized_shape,
    resized_source_mask,
    source_mask,
    tight_box,
)
from rem_refine.records import clean_small_regions, mask_fields, uncompressed_counts


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((480, 640), (768, 1024)),
        ((640, 480), (1024, 768)),
        ((427, 640), (683, 1024)),  # 683.2
        ((333, 500), (682, 1024)),  # 681.98 rounds up
        ((1024, 1024), (1024, 1024)),
        ((100, 100), (1024, 1024)),  # small images are upscaled
        ((2048, 512), (1024, 256)),
    ],
)
def test_long_side_becomes_1024(hw, expected):
    assert resized_shape(*hw) == expected


def _blobs(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(10, 60)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    return mask


def test_polygons_are_scaled_then_rasterised_at_the_new_size():
    poly = [10.0, 10.0, 50.0, 10.0, 50.0, 30.0, 10.0, 30.0]
    got = resized_source_mask([poly], 480, 640, (768, 1024))
    scaled = [v * 1.6 for v in poly]  # 1024 / 640 = 768 / 480 = 1.6
    want = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([scaled], 768, 1024)))
    assert np.array_equal(got, want.astype(bool))


def test_compressed_and_uncompressed_rle_give_the_nearest_neighbour_resize():
    mask = _blobs(480, 640, 0)
    compressed = encode(mask)
    uncompressed = to_uncompressed(compressed)
    a = resized_source_mask(compressed, 480, 640, (768, 1024))
    b = resized_source_mask(uncompressed, 480, 640, (768, 1024))
    # Nearest neighbour with pixel centres: destination x samples source floor((x + 0.5) / s).
    rows = np.floor((np.arange(768) + 0.5) / 1.6).astype(int)
    cols = np.floor((np.arange(1024) + 0.5) / 1.6).astype(int)
    want = mask[rows][:, cols]
    assert np.array_equal(a, want) and np.array_equal(b, want)
    assert np.array_equal(source_mask(uncompressed, 480, 640), mask)


def test_bad_segmentations_are_reported_not_guessed():
    with pytest.raises(SourceMaskError, match="degenerate"):
        resized_source_mask([[1.0, 2.0, 3.0, 4.0]], 480, 640, (768, 1024))
    with pytest.raises(SourceMaskError, match="differs from the image size"):
        resized_source_mask(encode(np.zeros((10, 10), bool)), 480, 640, (768, 1024))
    with pytest.raises(SourceMaskError):
        resized_source_mask(None, 480, 640, (768, 1024))


def test_tight_box_is_inclusive_and_zero_when_empty():
    mask = np.zeros((50, 60), dtype=bool)
    mask[5:9, 20:31] = True
    assert tight_box(mask) == (20, 5, 30, 8)
    assert tight_box(np.zeros((5, 5), bool)) == (0, 0, 0, 0)


def test_box_noise_only_expands_with_capped_sigma_and_clamps():
    normals = np.array([[1.0, -2.0, 0.5, 3.0]])
    # width 100 -> sigma_x = min(10, 10) = 10; height 40 -> sigma_y = 4.
    box = (10, 20, 110, 60)
    canvas = noisy_boxes(box, normals, (1023.0, 1023.0))
    assert canvas.tolist() == [[0.0, 12.0, 115.0, 72.0]]
    image = noisy_boxes(box, normals, (99.0, 69.0))
    assert image.tolist() == [[0.0, 12.0, 99.0, 69.0]]
    wide = noisy_boxes((100, 100, 400, 200), np.array([[1.0, 1.0, 1.0, 1.0]]), (1023.0, 1023.0))
    assert wide.tolist() == [[90.0, 90.0, 410.0, 210.0]]  # sigma capped at 10 px


def test_uncompressed_counts_match_pycocotools():
    for seed in range(5):
        mask = _blobs(37, 53, seed)
        if seed == 1:
            mask[0, 0] = True  # foreground first pixel: counts start with 0
        want = to_uncompressed(encode(mask))["counts"]
        assert uncompressed_counts(mask) == want
    assert uncompressed_counts(np.zeros((3, 4), bool)) == [12]
    assert uncompressed_counts(np.ones((3, 4), bool)) == [0, 12]


def test_mask_fields_area_and_inclusive_bbox():
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:5, 10:14] = True
    fields = mask_fields(mask)
    assert fields["area"] == 12
    assert fields["bbox"] == [10.0, 2.0, 4.0, 3.0]
    rle = coco_mask.frPyObjects(fields["segmentation"], 20, 30)
    assert np.array_equal(coco_mask.decode(rle).astype(bool), mask)
    assert list(coco_mask.toBbox(rle)) == fields["bbox"]
    assert mask_fields(np.zeros((4, 4), bool))["bbox"] == [0.0, 0.0, 1.0, 1.0]


def test_small_holes_then_islands_are_removed_only_for_large_masks():
    big = np.zeros((100, 100), dtype=bool)
    big[10:70, 10:70] = True  # 3600 px > 10 * 100
    big[30:35, 30:35] = False  # 25 px hole
    big[80:85, 80:85] = True  # 25 px island
    cleaned = clean_small_regions(big, 100)
    want = np.zeros((100, 100), dtype=bool)
    want[10:70, 10:70] = True
    assert np.array_equal(cleaned, want)
    small = np.zeros((100, 100), dtype=bool)
    small[10:40, 10:40] = True  # 900 px: not over 1000, left alone
    small[20:22, 20:22] = False
    assert np.array_equal(clean_small_regions(small, 100), small)
    # SAM's hole filling counts the outer background as a region too.
    almost_full = np.ones((60, 60), dtype=bool)
    almost_full[:3, :3] = False
    assert clean_small_regions(almost_full, 100).all()
    assert np.array_equal(clean_small_regions(big, 0), big)


def test_draws_depend_only_on_seed_image_annotation_and_trial():
    a = trial_draws(7, 42, 1001, 10, 2)
    b = trial_draws(7, 42, 1001, 3, 2)
    assert np.array_equal(a.normals[:3], b.normals) and np.array_equal(a.uniforms[:3], b.uniforms)
    c = trial_draws(7, 42, 1001, 10, 5)  # more points: the first two are unchanged
    assert np.array_equal(c.uniforms[:, :2], a.uniforms) and np.array_equal(c.normals, a.normals)
    assert not np.array_equal(trial_draws(8, 42, 1001, 10, 2).normals, a.normals)
    assert not np.array_equal(trial_draws(7, 42, 1002, 10, 2).normals, a.normals)
    assert not np.array_equal(trial_draws(7, 43, 1001, 10, 2).normals, a.normals)
    assert ((a.uniforms >= 0) & (a.uniforms < 1)).all()
    assert id_key(-1) == 2**64 - 1 and id_key("x") == id_key("x") != id_key("y")


def test_box_only_names_resolve_in_coco_and_lvis_spelling():
    from rem_core.synth.coco_categories import COCO_CATEGORIES

    coco = [{"id": i, "name": n} for i, n, _ in COCO_CATEGORIES]
    ids, unknown = resolve_box_only(coco, DEFAULT_BOX_ONLY_NAMES)
    assert ids == {65, 2, 51, 67, 4, 87} and unknown == []
    lvis = [
        {"id": 367, "name": "dining_table", "synonyms": ["dining_table", "dinner_table", "table"]},
        {"id": 77, "name": "bed", "synonyms": ["bed"]},
        {"id": 1000, "name": "table-tennis_table", "synonyms": ["ping-pong_table", "table"]},
    ]
    ids, unknown = resolve_box_only(lvis, ["dining table", "Bed", "dinner table", "table", "sofa"])
    assert ids == {367, 77}
    assert unknown == ["table", "sofa"]  # an ambiguous synonym is not guessed
    ids, unknown = resolve_box_only(lvis, [], ids=[77, 5])
    assert ids == {77} and unknown == ["id 5"]
    assert fold_name(" Dining__Table ") == "dining table"
    assert split_names(["bed,bowl", " dining table "]) == ["bed", "bowl", "dining table"]
