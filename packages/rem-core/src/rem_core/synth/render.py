"""Painting the synthetic images: textured backgrounds and shaded, noisy objects.

Backgrounds are low-saturation greys with a smooth random texture and pixel noise; objects are
saturated category colours with mild shading and noise. The colours are far apart, so a mask's
pixels can be told from the background by colour alone (the tests rely on that), and the edges are
sharp, so an edge-following refiner has something to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rem_core.synth.shapes import SHAPE_KINDS


@dataclass(frozen=True)
class SynthCategory:
    """A drawn category: its COCO record fields plus the shape kind and RGB colour it is drawn in."""

    id: int
    name: str
    supercategory: str
    kind: str
    rgb: tuple[int, int, int]

    def record(self) -> dict:
        return {"id": self.id, "name": self.name, "supercategory": self.supercategory}


# Saturated colours, pairwise at least ~70 apart in RGB and far from any grey.
_PALETTE: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("red disc", "ellipse", (220, 40, 40)),
    ("blue box", "rectangle", (40, 80, 220)),
    ("yellow star", "star", (235, 200, 30)),
    ("green polygon", "polygon", (40, 170, 60)),
    ("magenta blob", "blob", (200, 50, 200)),
    ("cyan ring", "ring", (30, 200, 210)),
    ("orange star", "star", (245, 130, 20)),
    ("purple box", "rectangle", (120, 50, 180)),
    ("lime blob", "blob", (150, 230, 40)),
    ("pink disc", "ellipse", (250, 120, 170)),
)
MAX_CATEGORIES = len(_PALETTE)
assert {kind for _, kind, _ in _PALETTE} == set(SHAPE_KINDS)


def synth_categories(num_categories: int) -> list[SynthCategory]:
    """The first ``num_categories`` drawn categories, ids 1..n."""
    return [
        SynthCategory(i + 1, name, "shape", kind, rgb)
        for i, (name, kind, rgb) in enumerate(_PALETTE[:num_categories])
    ]


def palette_rgb() -> np.ndarray:
    """(K, 3) float RGB of every drawable category colour, for colour-distance checks."""
    return np.array([rgb for _, _, rgb in _PALETTE], dtype=np.float64)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB background: grey base, smooth coloured texture, pixel noise."""
    base = rng.uniform(95, 165)
    texture = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        coarse = rng.normal(0, 1, size=(6, 8)).astype(np.float32)
        fine = rng.normal(0, 1, size=(24, 32)).astype(np.float32)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) * 14
        smooth += cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR) * 5
        texture[..., c] = smooth
    # Mostly shared across channels so the background stays close to grey.
    texture = 0.7 * texture.mean(axis=2, keepdims=True) + 0.3 * texture
    noise = rng.normal(0, 3.0, size=(height, width, 3)).astype(np.float32)
    return base + texture + noise


def paint(
    image: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], rng: np.random.Generator
) -> None:
    """Paint ``mask`` pixels of ``image`` (H, W, 3 float32) in ``rgb`` with shading and noise."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    # A gentle linear light gradient across the object (at most +-6% brightness).
    gx, gy = rng.uniform(-1, 1, size=2)
    span = max(np.ptp(xs), np.ptp(ys), 1)
    shade = 1 + 0.03 * (gx * (xs - xs.mean()) + gy * (ys - ys.mean())) / span
    colour = np.asarray(rgb, dtype=np.float32)
    noise = rng.normal(0, 3.0, size=(ys.size, 3)).astype(np.float32)
    image[ys, xs] = colour[None, :] * shade[:, None].astype(np.float32) + noise


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Clip an RGB float image to uint8 and reorder to BGR for OpenCV's writers."""
    return np.ascontiguousarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)[..., ::-1])
