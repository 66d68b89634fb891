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

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rem_core.errors import RemError


def dilation_width(height: int, width: int, ratio: float = 0.02) -> int:
    """d = max(1, round(ratio * image diagonal)), Python rounding (half to even): 500x375 -> 12."""
    return max(1, round(ratio * math.sqrt(height**2 + width**2)))


def string_to_counts(counts: str | bytes) -> np.ndarray:
    """Run lengths (int64) of a compressed COCO RLE string, as pycocotools' ``rleFrString``.

    Each number is a little-endian group of 6-bit characters (offset 48): 5 value bits, a
    continuation bit 0x20 and, in the last character, a sign bit 0x10. From the fourth number
    on, each is a delta against the run two places back.
    """
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        raise RemError("RLE counts string has characters outside the COCO alphabet")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise RemError("RLE counts string is truncated")
    ends = np.flatnonzero(last)
    if ends.size == c.size:
        # Every number fits one character: the common case for small masks' deltas.
        values = c & 0x1F
        neg = (c & 0x10) != 0
        values = np.where(neg, values | -32, values)
    else:
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts + 1
        shift = 5 * (np.arange(c.size) - np.repeat(starts, lengths))
        values = np.add.reduceat((c & 0x1F) << shift, starts)
        neg = (c[ends] & 0x10) != 0
        values[neg] |= np.left_shift(np.int64(-1), 5 * lengths[neg])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


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
    if runs.size < 2:
        return Crop(np.zeros((0, 0), dtype=np.uint8), 0, 0)
    ends = np.cumsum(runs)
    fg_len = runs[1::2]
    fg_end = ends[1::2]
    keep = fg_len > 0
    if not keep.any():
        return Crop(np.zeros((0, 0), dtype=np.uint8), 0, 0)
    fg_len = fg_len[keep]
    stop = fg_end[keep]
    start = stop - fg_len
    x_first, y_first = np.divmod(start, height)
    x_last, y_last = np.divmod(stop - 1, height)
    x0 = int(x_first[0])
    x1 = int(x_last[-1])
    if np.any(x_first != x_last):
        # A run wraps into the next column: the box is full height and the crop's
        # column-major index is the image's, shifted.
        y0, bh = 0, height
        lstart = start - x0 * height
    else:
        y0 = int(y_first.min())
        bh = int(y_last.max()) - y0 + 1
        lstart = (x_first - x0) * bh + (y_first - y0)
    bw = x1 - x0 + 1
    n = bw * bh
    # Alternate zero / one runs in the crop's own column-major index: one np.repeat.
    lens = np.empty(2 * lstart.size + 1, dtype=np.int64)
    lens[0] = lstart[0]
    lens[1::2] = fg_len
    lens[2:-1:2] = lstart[1:] - (lstart[:-1] + fg_len[:-1])
    lens[-1] = n - (lstart[-1] + fg_len[-1])
    values = np.zeros(lens.size, dtype=np.uint8)
    values[1::2] = 1
    return Crop(np.repeat(values, lens).reshape(bw, bh), x0, y0)


@lru_cache(maxsize=32)
def _square(d: int) -> np.ndarray:
    return np.ones((2 * d + 1, 2 * d + 1), dtype=np.uint8)


def band_of_crop(crop: Crop, d: int) -> Crop:
    """The boundary band of a cropped mask (same box): mask minus its (2d+1)-square erosion."""
    pix = crop.pix
    if pix.size == 0 or min(pix.shape) <= 2 * d:
        # Every window reaches outside the box: the erosion is empty, the band is the mask.
        return crop
    import cv2

    eroded = cv2.erode(pix, _square(d), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return Crop(pix - eroded, crop.x0, crop.y0)


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
