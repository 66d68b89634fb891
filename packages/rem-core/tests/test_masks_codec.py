"""rem_core.masks codec, conversions and measures against pycocotools and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as coco_mask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rem_core import masks
from rem_core.errors import RemError

# pycocotools' decode trips NumPy 2's __array__(copy=...) deprecation; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def binary_masks(draw, max_side: int = 24) -> np.ndarray:
    """Random (H, W) masks: pixel noise, blocky shapes, empty and full, including 1xN and Nx1."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(["noise", "blocks", "empty", "full"]))
    if kind == "empty":
        return np.zeros((h, w), dtype=np.uint8)
    if kind == "full":
        return np.ones((h, w), dtype=np.uint8)
    if kind == "noise":
        return draw(arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    cell = draw(st.integers(2, 6))
    grid = draw(arrays(np.uint8, (-(-h // cell), -(-w // cell)), elements=st.integers(0, 1)))
    return np.kron(grid, np.ones((cell, cell), dtype=np.uint8))[:h, :w].copy()


def coco_encode(mask: np.ndarray) -> dict:
    out = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(out["size"]), "counts": out["counts"].decode("ascii")}


def runs_by_loop(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with zeros, by a plain Python loop (independent truth)."""
    runs, current, n = [], 0, 0
    for v in mask.ravel(order="F").tolist():
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    return runs


@st.composite
def polygon_lists(draw, h: int, w: int):
    """1-3 polygons of 3-8 points, vertices up to 5 px outside the image."""
    coord_x = st.floats(-5, w + 5, allow_nan=False)
    coord_y = st.floats(-5, h + 5, allow_nan=False)
    polys = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(3, 8))
        polys.append([v for _ in range(n) for v in (draw(coord_x), draw(coord_y))])
    return polys


# --- codec ---------------------------------------------------------------------------------------


@SETTINGS
@given(binary_masks())
def test_encode_decode_match_pycocotools(mask):
    rle = masks.encode(mask)
    assert rle == coco_encode(mask)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(masks.decode(rle), mask)
    assert np.array_equal(masks.decode(rle), coco_mask.decode(rle))
    assert masks.encode(mask.astype(bool)) == rle


@SETTINGS
@given(binary_masks())
def test_string_to_counts_matches_loop_runs_and_round_trips(mask):
    rle = coco_encode(mask)
    assert masks.string_to_counts(rle["counts"]).tolist() == runs_by_loop(mask)
    unc = masks.to_uncompressed(rle)
    assert unc == {"size": list(mask.shape), "counts": runs_by_loop(mask)}
    back = coco_mask.frPyObjects(unc, *mask.shape)
    assert back["counts"].decode("ascii") == rle["counts"]
    assert masks.to_rle(unc, *mask.shape) == rle


def test_large_counts_round_trip():
    # Runs far beyond one 5-bit group and negative deltas between same-colour runs.
    h, w = 1000, 3000
    counts = [1_234_567, 1, 5, 3_000, 100_000, 7, h * w - 1_234_567 - 1 - 5 - 3_000 - 100_000 - 7]
    rle = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    assert masks.string_to_counts(rle["counts"]).tolist() == counts
    assert masks.counts_to_rle(counts, h, w)["counts"] == rle["counts"].decode("ascii")


@SETTINGS
@given(binary_masks(), st.booleans())
def test_decode_many_matches_pycocotools(mask, uncompressed):
    rles = [coco_encode(mask), coco_encode(1 - mask), coco_encode(np.zeros_like(mask))]
    if uncompressed:
        rles = [masks.to_uncompressed(r) for r in rles]
    stack = masks.decode_many(rles)
    assert stack.shape == (3, *mask.shape)
    expected = coco_mask.decode([masks.to_rle(r, *mask.shape) for r in rles])
    assert np.array_equal(stack, np.moveaxis(expected, 2, 0))


def test_hand_made_rle_4x4():
    # Pixel (row 0, col 1) is column-major index 4: runs 4 zeros, 1 one, 11 zeros.
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 1] = 1
    assert masks.to_uncompressed(masks.encode(mask))["counts"] == [4, 1, 11]
    assert masks.area(masks.encode(mask)) == 1
    assert masks.bbox(masks.encode(mask)) == [1.0, 0.0, 1.0, 1.0]
    # 16 zeros: value 16 has its sign bit set in the first 5-bit group, so it takes 2 chars.
    assert masks.encode(np.zeros((4, 4), dtype=np.uint8))["counts"] == "`0"
    assert masks.string_to_counts("`0").tolist() == [16]
    full = masks.encode(np.ones((4, 4), dtype=np.uint8))
    assert masks.to_uncompressed(full)["counts"] == [0, 16]
    assert masks.bbox(full) == [0.0, 0.0, 4.0, 4.0]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [4, 4], "counts": [3, 4]}, "cover 7 pixels"),
        ({"size": [4, 4], "counts": [3, -1, 14]}, "negative"),
        ({"size": [4, 4], "counts": "`"}, "truncated"),
        ({"size": [4, 4], "counts": "`0~"}, "alphabet"),
        ({"size": [4, 4], "counts": ""}, "cover 0 pixels"),
        ({"size": [4], "counts": [16]}, "'size' must be"),
        ({"size": [4, -4], "counts": [16]}, "non-negative"),
        ({"size": [4, 4], "counts": [1.5, 14.5]}, "whole numbers"),
        ({"size": [4, 4], "counts": 16}, "string or a list"),
    ],
)
def test_invalid_rle_raises_rem_error(rle, message):
    with pytest.raises(RemError, match=message):
        masks.decode(rle)


# --- conversions ---------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_polygons_match_pycocotools_ann_to_rle(data):
    h = data.draw(st.integers(1, 40))
    w = data.draw(st.integers(1, 40))
    polys = data.draw(polygon_lists(h, w))
    expected = coco_mask.merge(coco_mask.frPyObjects(polys, h, w))
    rle = masks.to_rle(polys, h, w)
    assert rle == {"size": [h, w], "counts": expected["counts"].decode("ascii")}


@SETTINGS
@given(st.data())
def test_degenerate_polygons_are_ignored_like_pycocotools(data):
    h = data.draw(st.integers(1, 30))
    w = data.draw(st.integers(1, 30))
    polys = data.draw(polygon_lists(h, w))
    short = data.draw(st.lists(st.floats(0, 30), min_size=0, max_size=5))
    mixed = [*polys, short]  # a short polygon after a good one: pycocotools rasterises it empty
    expected = coco_mask.merge(coco_mask.frPyObjects(mixed, h, w))
    assert masks.to_rle(mixed, h, w)["counts"] == expected["counts"].decode("ascii")
    # A short polygon first crashes pycocotools; rem drops it and gives the same mask as the rest.
    assert masks.to_rle([short, *polys], h, w) == masks.to_rle(polys, h, w)


def test_pycocotools_crashes_on_short_first_polygon_and_rem_does_not():
    square = [1.0, 1.0, 3.0, 1.0, 3.0, 3.0, 1.0, 3.0]
    with pytest.raises(TypeError):
        coco_mask.frPyObjects([[0, 0, 2, 2], square], 4, 4)  # taken for a box list
    with pytest.raises(Exception, match="not supported"):
        coco_mask.frPyObjects([[0, 0]], 4, 4)
    assert masks.to_rle([[0, 0, 2, 2], square], 4, 4) == masks.to_rle([square], 4, 4)
    assert masks.area(masks.to_rle([[0, 0]], 4, 4)) == 0
    assert masks.area(masks.to_rle([], 4, 4)) == 0
    # A bare flat list is read as one polygon.
    assert masks.to_rle(square, 4, 4) == masks.to_rle([square], 4, 4)


def test_clean_polygons_counts_what_it_drops():
    good = [0, 0, 4, 0, 4, 4]
    kept, dropped = masks.clean_polygons([good, [1, 2, 3, 4], [], [0, 0, 1, 1, float("nan"), 2]])
    assert kept == [good] and kept[0] is good  # kept polygons are passed through untouched
    assert dropped == 3
    assert masks.clean_polygons([]) == ([], 0)
    assert masks.clean_polygons([good, "text", [[1, 2, 3, 4, 5, 6]]]) == ([good], 2)
    assert masks.clean_polygons(good) == ([good], 0)  # a bare flat list is one polygon


def test_square_polygon_hand_case():
    # pycocotools samples pixel (x, y) at its corner: the square 1..3 covers pixels 1 and 2.
    rle = masks.to_rle([[1, 1, 3, 1, 3, 3, 1, 3]], 5, 5)
    expected = np.zeros((5, 5), dtype=np.uint8)
    expected[1:3, 1:3] = 1
    assert np.array_equal(masks.decode(rle), expected)
    assert masks.area(rle) == 4
    assert masks.bbox(rle) == [1.0, 1.0, 2.0, 2.0]


def test_to_rle_checks_size_and_type():
    rle = masks.encode(np.ones((3, 4), dtype=np.uint8))
    assert masks.to_rle(rle, 3, 4) == rle
    assert masks.to_rle({**rle, "counts": rle["counts"].encode()}, 3, 4) == rle
    with pytest.raises(RemError, match=r"does not match the image size \[4, 3\]"):
        masks.to_rle(rle, 4, 3)
    with pytest.raises(RemError, match="polygons or an RLE"):
        masks.to_rle(None, 3, 4)
    with pytest.raises(RemError, match="'size' and 'counts'"):
        masks.to_rle({"counts": "0"}, 3, 4)


# --- measures ------------------------------------------------------------------------------------


@SETTINGS
@given(binary_masks())
def test_area_and_bbox_match_pycocotools_and_numpy(mask):
    rle = coco_encode(mask)
    assert masks.area(rle) == int(mask.sum()) == int(coco_mask.area(rle))
    assert masks.bbox(rle) == coco_mask.toBbox(rle).tolist()
    assert masks.area(masks.to_uncompressed(rle)) == int(mask.sum())
    if mask.any():
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert masks.bbox(rle) == [float(v) for v in box]
    assert masks.areas([rle, rle]).tolist() == [int(mask.sum())] * 2
    assert masks.bboxes([rle]).tolist() == [masks.bbox(rle)]


@SETTINGS
@given(st.data())
def test_iou_matches_pycocotools_and_definition(data):
    h = data.draw(st.integers(1, 16))
    w = data.draw(st.integers(1, 16))
    mask_st = arrays(np.uint8, (h, w), elements=st.integers(0, 1))
    dts = [data.draw(mask_st) for _ in range(data.draw(st.integers(0, 3)))]
    gts = [data.draw(mask_st) for _ in range(data.draw(st.integers(0, 3)))]
    crowd = [data.draw(st.integers(0, 1)) for _ in gts]
    got = masks.iou(
        [coco_encode(m) for m in dts], [masks.to_uncompressed(coco_encode(m)) for m in gts], crowd
    )
    assert got.shape == (len(dts), len(gts))
    if dts and gts:
        ref = coco_mask.iou([coco_encode(m) for m in dts], [coco_encode(m) for m in gts], crowd)
        assert np.array_equal(got, np.asarray(ref))
    for i, d in enumerate(dts):
        for j, g in enumerate(gts):
            inter = int((d & g).sum())
            denom = int(d.sum()) if crowd[j] else int((d | g).sum())
            assert got[i, j] == pytest.approx(inter / denom if denom else 0.0)


def test_iou_hand_case_with_crowd():
    a = np.zeros((4, 4), dtype=np.uint8)
    b = np.zeros((4, 4), dtype=np.uint8)
    a[0:2, 0:2] = 1
    b[0:2, 1:3] = 1  # overlaps a in 2 pixels; union 6
    got = masks.iou([masks.encode(a)], [masks.encode(b), masks.encode(b)], [0, 1])
    assert got.tolist() == [[pytest.approx(1 / 3), 0.5]]
    with pytest.raises(RemError, match="iscrowd has 1 entries for 2"):
        masks.iou([masks.encode(a)], [masks.encode(b), masks.encode(b)], [0])
    with pytest.raises(RemError, match="one size"):
        masks.iou([masks.encode(a)], [masks.encode(np.ones((3, 3)))])


def test_merge_union_and_intersection():
    a = np.zeros((5, 6), dtype=np.uint8)
    b = np.zeros((5, 6), dtype=np.uint8)
    a[1:4, 0:3] = 1
    b[2:5, 2:6] = 1
    rles = [masks.encode(a), masks.to_uncompressed(masks.encode(b))]
    assert np.array_equal(masks.decode(masks.merge(rles)), a | b)
    assert np.array_equal(masks.decode(masks.merge(rles, intersect=True)), a & b)
    assert masks.merge(rles[:1]) == rles[0]


@SETTINGS
@given(binary_masks(max_side=30))
def test_box_crop_round_trip(mask):
    rle = coco_encode(mask)
    crop, x0, y0 = masks.decode_box(rle)
    if not mask.any():
        assert crop.shape == (0, 0)
    else:
        x, y, bw, bh = (int(v) for v in coco_mask.toBbox(rle))
        assert (x0, y0, crop.shape) == (x, y, (bh, bw))
        assert np.array_equal(crop, mask[y : y + bh, x : x + bw])
    runs = masks.encode_box(crop, x0, y0, *mask.shape)
    assert runs.tolist() == runs_by_loop(mask)


def test_mask_to_polygons_traces_shapes():
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[10:40, 20:70] = 1
    mask[45:55, 5:15] = 1
    polys = masks.mask_to_polygons(mask)
    assert len(polys) == 2
    rle = masks.to_rle(polys, 60, 80)
    assert masks.iou([rle], [masks.encode(mask)])[0, 0] > 0.9
    # Douglas-Peucker keeps the 4 corners of a rectangle.
    assert sorted(len(p) for p in masks.mask_to_polygons(mask, tolerance=1.0)) == [8, 8]
    assert masks.mask_to_polygons(np.zeros((5, 5))) == []
