"""Mask proposals without weights: selective-search-style grouping of superpixels.

Felzenszwalb's graph segmentation (scikit-image) gives the initial regions; adjacent regions are
merged greedily by colour-histogram, size and fill similarity until one region is left, and every
region ever formed is a proposal. Several segmentation scales are pooled; duplicates (mask IoU >=
``dedup_iou``) are dropped. Scores are left out: grouping gives no calibrated objectness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rem_core import masks as mask_ops

HIST_BINS = 25


@dataclass
class _Region:
    labels: list[int]
    size: int
    hist: np.ndarray  # (3 * HIST_BINS,) L1-normalised colour histogram
    box: tuple[int, int, int, int]  # XYXY, pixel edges


def _colour_hist(pixels: np.ndarray) -> np.ndarray:
    hist = np.concatenate(
        [np.histogram(pixels[:, c], bins=HIST_BINS, range=(0, 256))[0] for c in range(3)]
    ).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def _similarity(a: _Region, b: _Region, image_size: int) -> float:
    colour = float(np.minimum(a.hist, b.hist).sum())
    size = 1.0 - (a.size + b.size) / image_size
    x1, y1 = min(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    x2, y2 = max(a.box[2], b.box[2]), max(a.box[3], b.box[3])
    fill = 1.0 - ((x2 - x1) * (y2 - y1) - a.size - b.size) / image_size
    return colour + size + fill


def _adjacent_pairs(segments: np.ndarray) -> set[tuple[int, int]]:
    pairs = set()
    for a, b in (
        (segments[:, :-1], segments[:, 1:]),
        (segments[:-1, :], segments[1:, :]),
    ):
        differ = a != b
        lo = np.minimum(a[differ], b[differ])
        hi = np.maximum(a[differ], b[differ])
        pairs.update(zip(lo.tolist(), hi.tolist(), strict=True))
    return pairs


def group_segments(image: np.ndarray, segments: np.ndarray) -> list[dict]:
    """Hierarchical grouping of an (H, W) label map over an (H, W, 3) uint8 image.

    Returns compressed RLEs: every initial segment and every merge, in creation order.
    """
    h, w = segments.shape
    image_size = h * w
    flat = image.reshape(-1, 3)
    labels = segments.reshape(-1)
    regions: dict[int, _Region] = {}
    for lab in np.unique(labels):
        where = np.flatnonzero(labels == lab)
        ys, xs = np.divmod(where, w)
        regions[int(lab)] = _Region(
            [int(lab)],
            int(where.size),
            _colour_hist(flat[where]),
            (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
        )
    neighbours = _adjacent_pairs(segments)
    sims = {p: _similarity(regions[p[0]], regions[p[1]], image_size) for p in neighbours}
    order = sorted(regions)
    next_id = max(order) + 1
    while sims:
        a, b = max(sims, key=lambda p: (sims[p], -p[0], -p[1]))
        ra, rb = regions[a], regions[b]
        merged = _Region(
            ra.labels + rb.labels,
            ra.size + rb.size,
            (ra.hist * ra.size + rb.hist * rb.size) / (ra.size + rb.size),
            (
                min(ra.box[0], rb.box[0]),
                min(ra.box[1], rb.box[1]),
                max(ra.box[2], rb.box[2]),
                max(ra.box[3], rb.box[3]),
            ),
        )
        regions[next_id] = merged
        order.append(next_id)
        touching = set()
        for p in [p for p in sims if a in p or b in p]:
            del sims[p]
            touching.update(q for q in p if q not in (a, b))
        for t in touching:
            sims[(t, next_id)] = _similarity(regions[t], merged, image_size)
        next_id += 1
    lut = np.zeros(int(segments.max()) + 1, dtype=bool)
    rles = []
    for r in order:
        region = regions[r]
        # Only the region's box can hold its pixels: look labels up there, not in the image.
        x1, y1, x2, y2 = region.box
        lut[region.labels] = True
        mask = np.zeros((h, w), dtype=bool)
        mask[y1:y2, x1:x2] = lut[segments[y1:y2, x1:x2]]
        lut[region.labels] = False
        rles.append(mask_ops.encode(mask))
    return rles


def selective_search(
    image: np.ndarray,
    scales: Sequence[float] = (100.0, 300.0),
    sigma: float = 0.8,
    min_size: int | None = None,
    min_area: int = 16,
    dedup_iou: float = 0.95,
    max_proposals: int = 2000,
) -> np.ndarray:
    """(N, H, W) bool proposals of an (H, W, 3) uint8 RGB image (see the module docstring).

    ``scales`` are Felzenszwalb scales (larger -> bigger initial segments); ``min_size`` defaults
    to the scale; masks smaller than ``min_area`` pixels and the whole-image mask are dropped.
    """
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    rles: list[dict] = []
    for scale in scales:
        segments = felzenszwalb(image, scale=scale, sigma=sigma, min_size=int(min_size or scale))
        rles.extend(group_segments(image, segments))
    areas = mask_ops.areas(rles)
    candidates = [i for i in range(len(rles)) if min_area <= areas[i] < h * w]
    # Small masks first so deduplication keeps the finer grouping's copy deterministically.
    candidates.sort(key=lambda i: areas[i])
    kept: list[dict] = []
    for i in candidates:
        if kept and mask_ops.iou([rles[i]], kept).max() >= dedup_iou:
            continue
        kept.append(rles[i])
        if len(kept) == max_proposals:
            break
    if not kept:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([mask_ops.decode(r).astype(bool) for r in kept])
