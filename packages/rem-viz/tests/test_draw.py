"""Painting on tiny hand-built images whose expected pixels can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from rem_viz.crops import MaskCrop
from rem_viz.draw import label_anchor, outline_map, owner_map, paint_instances
from rem_viz.palette import category_color


def crop_of(full: np.ndarray) -> MaskCrop:
    return MaskCrop.from_full(full)


def test_one_mask_is_blended_inside_outlined_around_and_nothing_else_changes():
    image = np.full((6, 8, 3), 100, np.uint8)
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True  # rows 1-3, cols 2-5
    out = paint_instances(image, [crop_of(mask)], [(200, 0, 50)], alpha=0.5, outline=1)
    # 0.5 * 100 + 0.5 * (200, 0, 50) = (150, 50, 75)
    assert (out[mask] == (150, 50, 75)).all()
    ring = np.zeros((6, 8), bool)
    ring[0:5, 1:7] = True
    ring &= ~mask
    assert (out[ring] == 0).all()
    assert (out[~mask & ~ring] == 100).all()
    assert (image == 100).all(), "the input image must not be modified"


def test_outline_ring_is_the_one_pixel_band_outside_the_mask_even_at_the_border():
    mask = np.zeros((5, 5), bool)
    mask[0:2, 0:2] = True  # in the corner: the ring must not wrap or fall off
    ring = outline_map([crop_of(mask)], (5, 5), thickness=1)
    expected = np.zeros((5, 5), bool)
    expected[0:3, 0:3] = True
    expected[0:2, 0:2] = False
    assert (ring == expected).all()


def test_small_mask_stays_visible_on_a_large_one_whatever_the_input_order():
    image = np.zeros((12, 12, 3), np.uint8)
    big = np.zeros((12, 12), bool)
    big[1:11, 1:11] = True
    small = np.zeros((12, 12), bool)
    small[5:7, 5:7] = True
    red, blue = (255, 0, 0), (0, 0, 255)
    for masks, colors in (([small, big], [blue, red]), ([big, small], [red, blue])):
        out = paint_instances(image, [crop_of(m) for m in masks], colors, alpha=0.6, outline=0)
        assert (out[small] == (0, 0, 153)).all()  # 0.6 * 255 = 153
        assert (out[big & ~small] == (153, 0, 0)).all()
    owner = owner_map([crop_of(big), crop_of(small)], (12, 12))
    assert (owner[small] == 1).all() and (owner[big & ~small] == 0).all()
    assert (owner[~big] == -1).all()


def test_label_anchor_lies_inside_a_u_shaped_mask_whose_centroid_does_not():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:12] = True
    mask[5:35, 28:35] = True
    mask[28:35, 5:35] = True
    ys, xs = np.nonzero(mask)
    cy, cx = round(ys.mean()), round(xs.mean())
    assert not mask[cy, cx], "the test needs a shape whose centroid is outside it"
    x, y = label_anchor(crop_of(mask))
    assert mask[y, x]


def test_labels_are_drawn_as_a_white_box_near_the_mask():
    image = np.zeros((60, 120, 3), np.uint8)
    mask = np.zeros((60, 120), bool)
    mask[10:50, 20:100] = True
    plain = paint_instances(image, [crop_of(mask)], [(0, 0, 200)], outline=0)
    labelled = paint_instances(image, [crop_of(mask)], [(0, 0, 200)], labels=["dog (7)"], outline=0)
    changed = np.any(labelled != plain, axis=2)
    assert changed.sum() > 50
    ys, xs = np.nonzero(changed)
    assert 10 <= ys.mean() < 50 and 20 <= xs.mean() < 100
    assert (labelled[changed] == 255).all(axis=1).sum() > 0.3 * changed.sum()


def test_mismatched_lengths_and_sizes_are_refused():
    image = np.zeros((4, 4, 3), np.uint8)
    m = crop_of(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="same length"):
        paint_instances(image, [m], [])
    with pytest.raises(ValueError, match="does not fit"):
        paint_instances(image, [crop_of(np.ones((5, 4), bool))], [(1, 2, 3)])


def test_mask_crop_from_rle_matches_pycocotools_decode():
    rng = np.random.default_rng(0)
    full = np.zeros((37, 53), np.uint8)
    full[4:30, 9:41] = rng.random((26, 32)) > 0.4
    rle = coco_mask.encode(np.asfortranarray(full))
    crop = MaskCrop.from_rle({"size": rle["size"], "counts": rle["counts"].decode()})
    assert (crop.to_full() == coco_mask.decode(rle).astype(bool)).all()
    assert crop.area == int(coco_mask.area(rle))
    assert (crop.window(0, 0, 37, 53) == full.astype(bool)).all()
    assert (crop.window(10, 20, 15, 60)[:, :33] == full[10:15, 20:53].astype(bool)).all()
    empty = coco_mask.encode(np.zeros((5, 6), np.uint8, order="F"))
    assert MaskCrop.from_rle({"size": [5, 6], "counts": empty["counts"].decode()}).empty


def test_category_colours_depend_on_the_id_only_and_differ():
    assert category_color(18) == category_color(18)
    colours = [category_color(i) for i in range(1, 91)]
    assert len(set(colours)) == 90
    first = np.asarray(colours[:10], float)
    dist = np.sqrt(((first[:, None] - first[None]) ** 2).sum(-1)) + np.eye(10) * 1e9
    assert dist.min() > 60, "the first ten categories should be far apart in RGB"


def test_label_anchor_of_a_thin_diagonal_line_is_on_the_line():
    mask = np.zeros((300, 300), bool)
    idx = np.arange(10, 290)
    mask[idx, idx + 1] = True  # one pixel wide, off the sampling grid: needs the fallback
    x, y = label_anchor(crop_of(mask))
    assert mask[y, x]
