"""Partial-RES step 3: keep a pseudo mask only if its projections agree with the GT box.

The projection term compares the predicted mask with the filled GT box along both axes:
dice(max over rows) + dice(max over columns), dice(x, y) = 1 - 2 sum(xy) / (sum(x^2) + sum(y^2)
+ 1e-5). A mask that spans exactly the box's columns and rows scores 0; a pseudo mask is kept
when the term is below 0.1 (``choose_pseudo_data.py``).

Differences from the reference script, which had defects: a failed entry (no polygon with at
least 3 points) is dropped instead of reusing the previous entry's term; the first entry
failing is not an error; no ``test`` split is required; membership uses sets (not O(N^2)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rem_models.seqtr.sequences import rasterize

KEEP_BELOW = 0.1


def _dice_loss(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    return 1.0 - 2.0 * float((x * y).sum()) / (float((x * x).sum() + (y * y).sum()) + 1e-5)


def box_mask(box_xywh: Sequence[float], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of the pixels whose index lies in [x, x+w) x [y, y+h) (rounded ints)."""
    x, y, w, h = box_xywh
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    mask[y0:y1, x0:x1] = True
    return mask


def projection_term(mask: np.ndarray, box: np.ndarray) -> float:
    """dice(max over H) + dice(max over W) between a mask and a box mask, both (H, W)."""
    return _dice_loss(mask.max(axis=0), box.max(axis=0)) + _dice_loss(
        mask.max(axis=1), box.max(axis=1)
    )


def usable_polygons(polygons: Sequence[Sequence[float]]) -> list[list[float]]:
    """Polygons with at least 3 points (6 numbers), as lists of floats."""
    return [list(map(float, p)) for p in polygons if len(p) >= 6]


@dataclass(frozen=True)
class RppDecision:
    """Why an entry was kept or dropped: ``term`` is None when no usable polygon exists."""

    ref_id: int
    keep: bool
    term: float | None
    reason: str


def rpp_decision(
    ref_id: int,
    polygons: Sequence[Sequence[float]],
    box_xywh: Sequence[float],
    height: int,
    width: int,
    threshold: float = KEEP_BELOW,
) -> RppDecision:
    """Keep/drop one pseudo mask (polygons in original pixels) against its GT box."""
    usable = usable_polygons(polygons)
    if not usable:
        return RppDecision(ref_id, False, None, "no polygon with at least 3 points")
    mask = np.zeros((height, width), dtype=bool)
    for p in usable:
        mask |= rasterize(p, height, width)
    term = projection_term(mask, box_mask(box_xywh, height, width))
    keep = term < threshold
    return RppDecision(ref_id, keep, term, "kept" if keep else f"term {term:.3f} >= {threshold}")
