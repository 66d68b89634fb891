"""Degrading exact masks the way hand annotation does: coarse outlines, swollen or shrunken
extents, small offsets. Used for the "coarse" annotations and for the predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from rem_core import masks


@dataclass(frozen=True)
class Degradation:
    """Parameters applied to one mask, in pixels: morph > 0 dilates, < 0 erodes; the shift is
    (dx, dy); epsilon is the Douglas-Peucker tolerance of the outline (0: no polygon)."""

    morph_px: int
    shift_px: tuple[int, int]
    dp_epsilon_px: float

    def record(self) -> dict:
        out = asdict(self)
        out["shift_px"] = list(self.shift_px)
        return out


def morph(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate (px > 0) or erode (px < 0) an (H, W) bool mask by a disc of radius |px|."""
    if px == 0:
        return mask.copy()
    k = 2 * abs(px) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    op = cv2.dilate if px > 0 else cv2.erode
    # Outside the image is background for the erosion too (objects cut by the border shrink).
    out = op(mask.astype(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)


def shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate an (H, W) bool mask by (dx, dy) pixels; what leaves the image is lost."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def random_degradation(rng: np.random.Generator, area: int, strength: float = 1.0) -> Degradation:
    """Parameters scaled to the object: about 2-4% of its size, at least one pixel of change."""
    scale = max(1.0, 0.035 * np.sqrt(max(area, 1)) * strength)
    m = int(rng.integers(-round(scale), round(scale) + 1))
    s = max(1, round(scale * 0.7))
    dx, dy = (int(v) for v in rng.integers(-s, s + 1, size=2))
    eps = float(np.round(rng.uniform(0.8, 1.6) * scale, 2))
    if m == 0 and dx == 0 and dy == 0:
        dx = 1 if rng.random() < 0.5 else -1
    return Degradation(m, (dx, dy), eps)


def apply_to_mask(mask: np.ndarray, deg: Degradation) -> np.ndarray:
    """The degraded (H, W) bool mask, before any polygon simplification."""
    return shift(morph(mask, deg.morph_px), *deg.shift_px)


def degrade_to_polygons(mask: np.ndarray, deg: Degradation) -> list[list[float]]:
    """Apply ``deg`` and trace the result as simplified COCO polygons (holes are lost)."""
    return masks.mask_to_polygons(apply_to_mask(mask, deg), tolerance=deg.dp_epsilon_px)
