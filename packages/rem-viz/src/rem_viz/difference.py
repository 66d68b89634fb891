"""Difference view of two mask sets of one image, and side-by-side composites.

Pixels kept by both versions are tinted grey-blue, pixels the second version adds are green and
pixels it removes are magenta (a pair that colour-blind readers still tell apart), over a dimmed
copy of the image; the second version's outlines are drawn in white for shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rem_viz.crops import MaskCrop, union_box
from rem_viz.draw import RGB, WHITE, ascii_text, blend, dim, outline_map

ADDED: RGB = (40, 210, 60)
REMOVED: RGB = (230, 40, 200)
KEPT: RGB = (150, 170, 200)


def change_maps(
    pairs: Sequence[tuple[MaskCrop | None, MaskCrop | None]], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept, added, removed) (H, W) bool maps, each pair compared with its own partner.

    Comparing per pair (not the union of A against the union of B) shows a mask that moved onto
    a neighbour's pixels as changed, which a union comparison would hide.
    """
    kept = np.zeros(shape, bool)
    added = np.zeros(shape, bool)
    removed = np.zeros(shape, bool)
    empty = MaskCrop(np.zeros((0, 0), bool), 0, 0, shape)
    for a, b in pairs:
        a, b = a or empty, b or empty
        y0, x0, y1, x1 = union_box(a, b)
        if y1 <= y0 or x1 <= x0:
            continue
        wa, wb = a.window(y0, x0, y1, x1), b.window(y0, x0, y1, x1)
        kept[y0:y1, x0:x1] |= wa & wb
        added[y0:y1, x0:x1] |= wb & ~wa
        removed[y0:y1, x0:x1] |= wa & ~wb
    return kept, added, removed


def difference_view(
    image: np.ndarray, pairs: Sequence[tuple[MaskCrop | None, MaskCrop | None]]
) -> np.ndarray:
    """The (H, W, 3) RGB difference view of matched pairs (A, B); None marks a missing side."""
    shape = (image.shape[0], image.shape[1])
    kept, added, removed = change_maps(pairs, shape)
    out = dim(image)
    blend(out, kept & ~added & ~removed, np.asarray(KEPT), 0.45)
    blend(out, removed, np.asarray(REMOVED), 0.85)
    blend(out, added, np.asarray(ADDED), 0.85)
    b_masks = [b for _, b in pairs if b is not None]
    out[outline_map(b_masks, shape, 1)] = WHITE
    return out


def with_header(
    panel: np.ndarray, title: str, swatches: Sequence[tuple[RGB, str]] = ()
) -> np.ndarray:
    """``panel`` under a dark strip holding ``title`` and coloured legend swatches."""
    scale = max(0.6, panel.shape[1] / 1000)  # readable when the composite is shown whole
    thickness = 1
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    strip_h = th + base + 12
    strip = np.full((strip_h, panel.shape[1], 3), 32, np.uint8)
    x = 8
    y = 6 + th
    cv2.putText(
        strip,
        ascii_text(title),
        (x, y),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        WHITE,
        thickness,
        cv2.LINE_AA,
    )
    (tw, _), _ = cv2.getTextSize(ascii_text(title), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x += tw + 16
    for color, text in swatches:
        cv2.rectangle(strip, (x, 6), (x + th, 6 + th), color, thickness=-1)
        x += th + 6
        cv2.putText(
            strip,
            ascii_text(text),
            (x, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            WHITE,
            thickness,
            cv2.LINE_AA,
        )
        (tw, _), _ = cv2.getTextSize(ascii_text(text), cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x += tw + 14
    return np.vstack([strip, panel])


def side_by_side(panels: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels of one height placed left to right with a dark gap between them."""
    h = max(p.shape[0] for p in panels)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if p.shape[0] < h:
            p = np.vstack([p, np.full((h - p.shape[0], p.shape[1], 3), 32, np.uint8)])
        if i:
            parts.append(np.full((h, gap, 3), 16, np.uint8))
        parts.append(p)
    return np.hstack(parts)
