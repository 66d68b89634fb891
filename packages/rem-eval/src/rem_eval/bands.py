"""Boundary bands (boundary-iou-api's ``mask_to_boundary``) on box crops, and their IoU.

The reference pads the full (H, W) mask with one ring of zeros, erodes it d times with a 3x3
square and keeps mask minus erosion: the mask pixels within chessboard distance d of a
background pixel, the outside of the image counting as background (eval.md §2.1). The mask is
zero outside its box, so the same band comes out of the box crop alone eroded once with a
(2d+1)x(2d+1) square and a zero border: a window that leaves the crop leaves the box, where the
true mask (or the padded image) is zero too. Crops are kept transposed, (width, height), the
natural layout of column-major RLE; a square erosion does not care.

Boundary IoU is then |Bd ∩ Bg| / |Bd ∪ Bg| with the union counted as |Bd| + |Bg| - |Bd ∩ Bg|,
the same integers pycocotools' ``rleIou`` counts on the band RLEs, divided in float64 the same
way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core import masks
from rem_core.masks import column_major_crop, run_box, string_to_counts


def rle_runs(rle: dict) -> np.ndarray:
    """Run lengths of a compressed (str / bytes counts) or uncompressed (list counts) RLE."""
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        return string_to_counts(counts)
    return np.asarray(counts, dtype=np.int64)


@dataclass
class Crop:
    """A mask's box crop, transposed: ``pix`` is (box width, box height) uint8, x-major.

    ``x0``/``y0`` are the box's top-left pixel in the image; an empty mask has a (0, 0) crop.
    """

    pix: np.ndarray
    x0: int
    y0: int

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.pix))


def crop_of_runs(runs: np.ndarray, height: int) -> Crop:
    """The tight-box crop of the mask with column-major run lengths ``runs`` on an image of
    ``height`` rows."""
    box = run_box(runs, height)
    if box is None:
        return Crop(np.zeros((0, 0), dtype=np.uint8), 0, 0)
    return Crop(column_major_crop(box), box.x0, box.y0)


def band_of_crop(crop: Crop, d: int) -> Crop:
    """The boundary band of a cropped mask (same box): mask minus its (2d+1)-square erosion."""
    if crop.pix.size == 0:
        return crop
    return Crop(masks.band_of_crop(crop.pix, d), crop.x0, crop.y0)


def crop_intersection(a: Crop, b: Crop) -> int:
    """|A ∩ B| of two crops placed on the same image."""
    if a.pix.size == 0 or b.pix.size == 0:
        return 0
    ax1, ay1 = a.x0 + a.pix.shape[0], a.y0 + a.pix.shape[1]
    bx1, by1 = b.x0 + b.pix.shape[0], b.y0 + b.pix.shape[1]
    x0, x1 = max(a.x0, b.x0), min(ax1, bx1)
    y0, y1 = max(a.y0, b.y0), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0
    pa = a.pix[x0 - a.x0 : x1 - a.x0, y0 - a.y0 : y1 - a.y0]
    pb = b.pix[x0 - b.x0 : x1 - b.x0, y0 - b.y0 : y1 - b.y0]
    return int(np.count_nonzero(pa & pb))


def iou_of_counts(inter: int, count_a: int, count_b: int) -> float:
    """pycocotools' non-crowd RLE IoU from the counts: 0 without intersection, else I / U."""
    if inter == 0:
        return 0.0
    return float(inter) / float(count_a + count_b - inter)
