"""Segmentations to the RLEs pycocotools would use, boxes, and the reference box IoU.

GT conversion is ``COCO.annToRLE``: polygons go through ``frPyObjects`` and ``merge`` (its own
rasteriser; cv2.fillPoly differs by a pixel), uncompressed RLE through ``frPyObjects`` (which
reads the RLE's own size), compressed RLE is used as is. Where pycocotools would crash on a
malformed polygon list (empty, or a first polygon shorter than 4 numbers), the unusable polygons
are dropped and the caller counts a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError


def to_coco_rle(segm: Any, height: int, width: int) -> tuple[dict, bool]:
    """(compressed RLE as pycocotools' ``annToRLE`` makes it, whether it had to be repaired)."""
    if isinstance(segm, Mapping):
        counts = segm.get("counts")
        if isinstance(counts, str | bytes):
            return segm, False  # type: ignore[return-value]
        if isinstance(counts, list):
            try:
                return mask_utils.frPyObjects(dict(segm), height, width), False
            except Exception as exc:
                raise RemError(f"bad uncompressed RLE: {exc}") from None
        raise RemError("an RLE needs 'counts' as a string or a list of ints")
    if isinstance(segm, list | tuple):
        polys = [list(p) for p in segm] if segm and isinstance(segm[0], list | tuple) else None
        if polys is not None:
            try:
                rles = mask_utils.frPyObjects(polys, height, width)
                return mask_utils.merge(rles), False
            except Exception:
                pass
        good = [
            [float(v) for v in p]
            for p in (polys or [])
            if len(p) >= 6 and len(p) % 2 == 0 and all(isinstance(v, int | float) for v in p)
        ]
        if not good:
            return empty_rle(height, width), True
        return mask_utils.merge(mask_utils.frPyObjects(good, height, width)), True
    if segm is None:
        raise RemError("missing 'segmentation'")
    raise RemError(f"a segmentation must be polygons or an RLE, got {type(segm).__name__}")


def empty_rle(height: int, width: int) -> dict:
    return mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]


def box_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Element-wise IoU of XYWH boxes ``d[i]`` and ``g[i]`` exactly as maskApi ``bbIou``.

    The same float64 operations in the same order (no +1; crowd: I / area(d)), so the values
    are bit-identical to pycocotools'.
    """
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    da = d[:, 2] * d[:, 3]
    ga = g[:, 2] * g[:, 3]
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    ok = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ok, inter / np.where(ok, union, 1.0), 0.0)
    return out


def rle_areas(rles: list) -> np.ndarray:
    """Mask areas (float64) of compressed RLEs with pycocotools' ``rleArea``.

    pycocotools' ``area`` builds a scratch ``np.array((n,), dtype=np.uint8)``, which NumPy 2
    rejects for n > 255, hence the batches.
    """
    if not rles:
        return np.zeros(0)
    return np.concatenate(
        [
            np.asarray(mask_utils.area(rles[i : i + 255]), dtype=np.float64)
            for i in range(0, len(rles), 255)
        ]
    )
