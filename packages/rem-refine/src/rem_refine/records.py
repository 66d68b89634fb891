"""From a refined (H, W) mask to the annotation fields stage 1 writes (refine.md §1.5-1.6).

Cleanup: SAM amg's ``remove_small_regions``, holes first and then islands, only for masks larger
than ``10 * min_area`` pixels. Output: uncompressed RLE (column-major runs starting with a
background run, as COCO-ReM stores every mask), ``area`` = foreground pixels and ``bbox`` = XYWH
from inclusive extremes, [x1, y1, x2 - x1 + 1, y2 - y1 + 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from segment_anything.utils.amg import remove_small_regions


def clean_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes and drop islands below ``min_area`` pixels in masks over ``10 * min_area``."""
    if min_area <= 0 or int(mask.sum()) <= 10 * min_area:
        return mask
    mask, _ = remove_small_regions(mask, min_area, mode="holes")
    mask, _ = remove_small_regions(mask, min_area, mode="islands")
    return mask


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths of an (H, W) mask, starting with a (possibly empty) zero run."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    if flat.size == 0:
        return [0]
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges).tolist()
    return [0, *runs] if flat[0] else runs


def mask_fields(mask: np.ndarray) -> dict[str, Any]:
    """``segmentation`` (uncompressed RLE), ``area`` and ``bbox`` of an (H, W) bool mask."""
    h, w = mask.shape
    counts = uncompressed_counts(mask)
    area = int(sum(counts[1::2]))
    if area == 0:
        box = [0.0, 0.0, 1.0, 1.0]  # what the reference wrote for an empty mask
    else:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        x1, x2, y1, y2 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
        box = [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)]
    return {"segmentation": {"size": [h, w], "counts": counts}, "area": area, "bbox": box}
