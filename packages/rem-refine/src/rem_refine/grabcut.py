"""A weight-free refiner: OpenCV GrabCut seeded by the coarse mask, for CPU-only use.

A hand-drawn outline is usually right up to a few pixels, so GrabCut is told exactly that: pixels
deeper than ``band`` inside the source mask are sure foreground, pixels farther than ``band``
outside are sure background, and the band between is left for the colour models to decide. The
band grows with the object (``band_ratio * sqrt(area)``, at least ``min_band`` pixels), like the
errors of hand annotation do.

Everything runs on an (H, W) crop around the band; the result is an (H, W) bool mask at the
original resolution. GrabCut draws random numbers (k-means seeding of its colour models), so the
OpenCV RNG of the calling thread is reseeded per annotation from (seed, image id, annotation id).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rem_refine.draws import id_key


@dataclass(frozen=True)
class GrabCutOptions:
    """``band_ratio``/``min_band``: half-width in pixels of the undecided band around the source
    boundary; ``iterations``: GrabCut EM rounds; ``max_change``: a result whose IoU with the source
    is below ``1 - max_change`` is rejected as a failure (the source mask is kept)."""

    band_ratio: float = 0.08
    min_band: int = 3
    iterations: int = 4
    max_change: float = 0.5


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grabcut_refine(
    image_bgr: np.ndarray,
    source: np.ndarray,
    options: GrabCutOptions,
    seed: int,
    image_id: object,
    ann_id: object,
) -> np.ndarray | None:
    """Refined (H, W) bool mask of ``source`` on ``image_bgr`` (H, W, 3 uint8), or None.

    None means GrabCut could not run or gave an implausible answer; the caller keeps the source.
    """
    area = int(source.sum())
    if area == 0:
        return None
    h, w = source.shape
    band = max(options.min_band, round(options.band_ratio * math.sqrt(area)))
    rows = np.flatnonzero(source.any(axis=1))
    cols = np.flatnonzero(source.any(axis=0))
    margin = 2 * band + 8
    y0, y1 = max(0, rows[0] - margin), min(h, rows[-1] + margin + 1)
    x0, x1 = max(0, cols[0] - margin), min(w, cols[-1] + margin + 1)
    src = source[y0:y1, x0:x1].astype(np.uint8)
    crop = np.ascontiguousarray(image_bgr[y0:y1, x0:x1])

    inner = cv2.erode(src, _disc(band), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    outer = cv2.dilate(src, _disc(band))
    labels = np.full(src.shape, cv2.GC_BGD, dtype=np.uint8)
    labels[outer > 0] = cv2.GC_PR_BGD
    labels[src > 0] = cv2.GC_PR_FGD
    labels[inner > 0] = cv2.GC_FGD
    if not (labels == cv2.GC_BGD).any() and not (labels == cv2.GC_PR_BGD).any():
        return None  # the object fills the image: no background to model

    # GrabCut's k-means seeding uses the thread's OpenCV RNG; seed it for reproducible output.
    cv2.setRNGSeed(_cv_seed(seed, image_id, ann_id))
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(crop, labels, None, bgd, fgd, options.iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    refined_crop = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    refined = np.zeros_like(source, dtype=bool)
    refined[y0:y1, x0:x1] = refined_crop
    inter = int(np.logical_and(refined, source).sum())
    union = int(np.logical_or(refined, source).sum())
    if union == 0 or inter / union < 1.0 - options.max_change:
        return None
    return refined


def _cv_seed(seed: int, image_id: object, ann_id: object) -> int:
    mixed = np.random.SeedSequence([0x4743, id_key(seed), id_key(image_id), id_key(ann_id)])
    return int(mixed.generate_state(1)[0] & 0x7FFFFFFF)
