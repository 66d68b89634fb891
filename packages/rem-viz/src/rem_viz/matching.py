"""Pairing the instances of two annotation sets of one image and measuring each pair.

Two versions of one dataset (COCO and COCO-ReM, coarse and refined) describe the same objects
with different masks. Pairs are found per category by mask IoU, greedily from the best overlap
down (or by annotation id when both files keep ids); each pair gets its mask IoU, its Boundary
IoU and the pixels one version adds to or removes from the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rem_core.masks import boundary_rle, iou
from rem_viz.crops import MaskCrop, union_box

MATCH_MODES = ("iou", "id")


def match_by_iou(
    rles_a: Sequence[dict],
    cats_a: Sequence[int],
    rles_b: Sequence[dict],
    cats_b: Sequence[int],
    min_iou: float = 0.1,
) -> list[tuple[int, int]]:
    """Pairs (i in A, j in B) of the same category, best IoU first, each index used once.

    A pair needs IoU >= ``min_iou`` (and > 0). Ties are broken by the lower A index, then the
    lower B index, so the result does not depend on anything but the input order.
    """
    pairs: list[tuple[int, int]] = []
    for cat in sorted(set(cats_a) & set(cats_b)):
        ia = [i for i, c in enumerate(cats_a) if c == cat]
        ib = [j for j, c in enumerate(cats_b) if c == cat]
        # rows: B, columns: A (pycocotools' (dt, gt) layout); non-crowd IoU both ways.
        m = iou([rles_b[j] for j in ib], [rles_a[i] for i in ia])
        rows, cols = np.nonzero((m >= min_iou) & (m > 0))
        order = np.lexsort((rows, cols, -m[rows, cols]))
        used_a: set[int] = set()
        used_b: set[int] = set()
        for k in order:
            i, j = ia[cols[k]], ib[rows[k]]
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def match_by_id(ids_a: Sequence[int | None], ids_b: Sequence[int | None]) -> list[tuple[int, int]]:
    """Pairs (i, j) whose annotation ids are equal (files that keep ids across versions)."""
    where_b = {aid: j for j, aid in enumerate(ids_b) if aid is not None}
    return [(i, where_b[aid]) for i, aid in enumerate(ids_a) if aid is not None and aid in where_b]


@dataclass(frozen=True)
class PixelChange:
    """Pixel counts of a pair: ``added`` lie in B only, ``removed`` in A only."""

    area_a: int
    area_b: int
    intersection: int
    added: int
    removed: int

    @property
    def union(self) -> int:
        return self.area_a + self.added

    @property
    def iou(self) -> float:
        """Mask IoU (0 when both masks are empty, as pycocotools)."""
        return self.intersection / self.union if self.union else 0.0


def pixel_change(a: MaskCrop | None, b: MaskCrop | None) -> PixelChange:
    """Counts for masks A and B of one image; None stands for "no instance" (all added/removed)."""
    if a is None and b is None:
        raise ValueError("need at least one mask")
    if a is None:
        return PixelChange(0, b.area, 0, b.area, 0)
    if b is None:
        return PixelChange(a.area, 0, 0, 0, a.area)
    y0, x0, y1, x1 = union_box(a, b)
    wa, wb = a.window(y0, x0, y1, x1), b.window(y0, x0, y1, x1)
    inter = int(np.count_nonzero(wa & wb))
    return PixelChange(a.area, b.area, inter, b.area - inter, a.area - inter)


def boundary_iou(rle_a: dict, rle_b: dict, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two masks (Cheng et al. 2021; boundary-iou-api's band, eval.md §2.1)."""
    band_a = boundary_rle(rle_a, dilation_ratio)
    band_b = boundary_rle(rle_b, dilation_ratio)
    return float(iou([band_b], [band_a])[0, 0])
