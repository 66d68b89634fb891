"""COCO polygons: dropping the degenerate ones and tracing polygons back from masks.

A COCO polygon is a flat list ``[x1, y1, x2, y2, ...]`` in pixel coordinates where pixel (x, y)
covers the square [x, x+1) x [y, y+1). pycocotools needs at least three points (6 numbers) per
polygon and misbehaves below that, depending on where the short polygon sits in the list:

* a *first* polygon of exactly 4 numbers is taken for a list of boxes and ``frPyObjects`` raises
  ``TypeError``; a first polygon of 0-3 numbers raises ``Exception("input type is not
  supported")``; an empty list raises ``IndexError``;
* a later polygon of fewer than 6 numbers rasterises to an empty mask, i.e. it is ignored;
* an odd trailing number is ignored (a polygon of 7 numbers is its first 3 points).

:func:`clean_polygons` drops the short (and non-finite) polygons, which gives pycocotools' result
wherever pycocotools gives one, and an empty mask where it would crash.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MIN_POLYGON_COORDS = 6


def _as_coords(poly: object) -> np.ndarray | None:
    """A polygon as a flat float64 array, or None when it is unusable (short, non-numeric,
    nested or non-finite)."""
    if not isinstance(poly, list | tuple | np.ndarray):
        return None
    try:
        coords = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if coords.ndim != 1 or coords.size < MIN_POLYGON_COORDS or not np.isfinite(coords).all():
        return None
    return coords


def _as_polygon_list(polygons: Sequence) -> Sequence:
    """A bare flat list of numbers is one polygon."""
    if len(polygons) and isinstance(polygons[0], int | float | np.integer | np.floating):
        return [polygons]
    return polygons


def usable_polygons(polygons: Sequence) -> tuple[list[np.ndarray], int]:
    """``(coords, dropped_count)``: the usable polygons as flat float64 arrays (for rasterising)."""
    kept, dropped = [], 0
    for poly in _as_polygon_list(polygons):
        coords = _as_coords(poly)
        if coords is None:
            dropped += 1
        else:
            kept.append(coords)
    return kept, dropped


def clean_polygons(polygons: Sequence) -> tuple[list, int]:
    """Keep the usable polygons; return ``(kept, dropped_count)``.

    Accepts a list of flat coordinate lists (or a single flat list). A polygon is dropped when it
    has fewer than 6 coordinates, holds something other than finite numbers, or is not a list.
    Kept polygons are returned as they came (the same list objects), so a cleaned annotation
    serialises exactly as before.
    """
    kept, dropped = [], 0
    for poly in _as_polygon_list(polygons):
        if _as_coords(poly) is None:
            dropped += 1
        else:
            kept.append(poly)
    return kept, dropped


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[list[float]]:
    """Outer outlines of an (H, W) binary mask as COCO polygons, simplified by Douglas-Peucker.

    ``tolerance`` is the Douglas-Peucker epsilon in pixels (0 keeps every contour corner). Holes
    are not represented (COCO polygons are unioned, so a hole cannot be expressed) and parts with
    fewer than 3 points after simplification are dropped. Vertices are pixel centres (x + 0.5,
    y + 0.5), which rasterise back through pycocotools closest to the original mask.
    """
    binary = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, float(tolerance), True)
        points = contour.reshape(-1, 2).astype(np.float64) + 0.5
        if len(points) >= 3:
            polygons.append(points.ravel().tolist())
    return polygons
