"""Boundary bands for Boundary IoU (Cheng et al., CVPR 2021), as boundary-iou-api computes them.

The band of a mask M on an (H, W) image is M minus its erosion, where the erosion is a 3x3 square
erosion iterated d times over M padded by one ring of zeros (so the image border counts as
background), with d = :func:`dilation_width`. d iterations of a 3x3 erosion are one erosion by a
(2d+1)x(2d+1) square, which OpenCV runs as two separable 1-D passes; and since pixels outside the
mask's box are zero anyway, the work is done on the box crop alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from rem_core.errors import RemError
from rem_core.masks.codec import RleDict, counts_to_rle, rle_counts, rle_size
from rem_core.masks.crop import crop_of_runs, encode_box, run_box


def dilation_width(height: int, width: int, ratio: float = 0.02) -> int:
    """d = max(1, round(ratio * image diagonal)), rounding half to even like Python's ``round``.

    d depends on the image, not the object: 640x480 gives 16, 500x375 gives 12 (12.5 rounds down).
    """
    if ratio < 0:
        raise RemError(f"dilation ratio must be >= 0, got {ratio}")
    return max(1, round(ratio * math.sqrt(height**2 + width**2)))


@functools.lru_cache(maxsize=64)
def _square(d: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (2 * d + 1, 2 * d + 1))


def band_of_crop(crop: np.ndarray, d: int) -> np.ndarray:
    """Band of a mask given as its box crop (uint8 0/1, either orientation: a square erosion
    does not care); same shape as the crop. Outside the crop counts as background."""
    h, w = crop.shape
    if h < 2 * d + 1 or w < 2 * d + 1:
        # No pixel can be d away from the outside on both sides: the band is the whole mask.
        return crop.copy()
    eroded = cv2.erode(crop, _square(d), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return crop - eroded


def boundary_band(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """(H, W) uint8 band (0/1) of an (H, W) binary mask: pixels of the mask within chessboard
    distance d of a non-mask pixel, with the outside of the image counting as non-mask."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RemError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    h, w = mask.shape
    d = dilation_width(h, w, dilation_ratio)
    binary = mask != 0
    out = np.zeros((h, w), dtype=np.uint8)
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(binary.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = np.ascontiguousarray(binary[y0:y1, x0:x1], dtype=np.uint8)
    out[y0:y1, x0:x1] = band_of_crop(crop, d)
    return out


def boundary_rle(rle: Mapping[str, Any], dilation_ratio: float = 0.02) -> RleDict:
    """Compressed RLE of the boundary band of a (compressed or uncompressed) RLE mask."""
    h, w = rle_size(rle)
    d = dilation_width(h, w, dilation_ratio)
    runs = rle_counts(rle)
    box = run_box(runs, h)
    if box is None:
        return counts_to_rle([h * w], h, w)
    box_h, box_w = box.shape
    if (box_h < 2 * d + 1 or box_w < 2 * d + 1) and (runs.size < 2 or runs[1:].min() > 0):
        # Thinner than 2d+1 (most small objects): the band is the whole mask, and these runs
        # are already canonical, so no pixel needs touching.
        return counts_to_rle(runs, h, w)
    band = band_of_crop(crop_of_runs(box), d)
    return counts_to_rle(encode_box(band, box.x0, box.y0, h, w), h, w)


def boundary_rles(rles: Sequence[Mapping[str, Any]], dilation_ratio: float = 0.02) -> list[RleDict]:
    """Boundary bands of many masks (typically all masks of one image), each O(its box)."""
    return [boundary_rle(r, dilation_ratio) for r in rles]


def boundary_bands(stack: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """Bands of an (N, H, W) stack of masks of one image, as an (N, H, W) uint8 stack."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise RemError(f"a mask stack must be 3-D (N, H, W), got shape {stack.shape}")
    out = np.zeros(stack.shape, dtype=np.uint8)
    for i, mask in enumerate(stack):
        out[i] = boundary_band(mask, dilation_ratio)
    return out
