"""Filled shapes for the drawn synthetic sample, rasterised exactly (no anti-aliasing).

Each shape is an outline polygon (float vertices, pixel coordinates) filled with OpenCV at 1/16
pixel precision into a binary mask, so the drawn pixels and the ground-truth mask are the same
set by construction. Rings are an outer outline minus an inner one, giving masks with holes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_KINDS = ("ellipse", "rectangle", "star", "polygon", "blob", "ring")

_SUBPIXEL_BITS = 4


@dataclass(frozen=True)
class ShapeSpec:
    """Where and how big a shape is: centre (cx, cy) and radius in pixels, angle in radians."""

    kind: str
    cx: float
    cy: float
    radius: float
    angle: float
    aspect: float  # minor/major axis ratio, in (0, 1]
    detail: tuple[float, ...] = ()  # kind-specific random parameters (star points, blob waves)


def _rotate(x: np.ndarray, y: np.ndarray, spec: ShapeSpec) -> np.ndarray:
    c, s = np.cos(spec.angle), np.sin(spec.angle)
    return np.stack([spec.cx + c * x - s * y, spec.cy + s * x + c * y], axis=1)


def _ellipse(spec: ShapeSpec, scale: float = 1.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = spec.radius * scale
    return _rotate(r * np.cos(t), r * spec.aspect * np.sin(t), spec)


def outlines(spec: ShapeSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(filled, holes)``: lists of (N, 2) XY vertex arrays; holes are cut out after filling."""
    r = spec.radius
    if spec.kind == "ellipse":
        return [_ellipse(spec)], []
    if spec.kind == "ring":
        return [_ellipse(spec)], [_ellipse(spec, scale=0.5)]
    if spec.kind == "rectangle":
        x = np.array([-r, r, r, -r])
        y = np.array([-r, -r, r, r]) * spec.aspect
        return [_rotate(x, y, spec)], []
    if spec.kind == "star":
        points = int(spec.detail[0]) if spec.detail else 5
        t = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
        radii = np.where(np.arange(2 * points) % 2 == 0, r, r * 0.45)
        return [_rotate(radii * np.cos(t), radii * np.sin(t), spec)], []
    if spec.kind == "polygon":
        sides = int(spec.detail[0]) if spec.detail else 6
        t = np.linspace(0, 2 * np.pi, sides, endpoint=False)
        return [_rotate(r * np.cos(t), r * spec.aspect * np.sin(t), spec)], []
    if spec.kind == "blob":
        t = np.linspace(0, 2 * np.pi, 128, endpoint=False)
        wobble = np.ones_like(t)
        waves = spec.detail or (0.15, 0.0, 0.1, 1.0, 0.05, 2.0)
        for k, (amp, phase) in enumerate(zip(waves[0::2], waves[1::2]), start=2):
            wobble += amp * np.cos(k * t + phase)
        return [_rotate(r * wobble * np.cos(t), r * spec.aspect * wobble * np.sin(t), spec)], []
    raise ValueError(f"unknown shape kind {spec.kind!r}")


def rasterize(spec: ShapeSpec, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of the shape; parts outside the image are cut off."""
    mask = np.zeros((height, width), dtype=np.uint8)
    filled, holes = outlines(spec)
    scale = 1 << _SUBPIXEL_BITS

    def fixed(points: np.ndarray) -> list[np.ndarray]:
        # OpenCV fills in pixel-centre coordinates: subtract 0.5 so the shape covers the pixels
        # whose centres lie inside the outline.
        return [np.round((points - 0.5) * scale).astype(np.int32).reshape(-1, 1, 2)]

    for pts in filled:
        cv2.fillPoly(mask, fixed(pts), 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    for pts in holes:
        cv2.fillPoly(mask, fixed(pts), 0, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def random_spec(
    rng: np.random.Generator, kind: str, cx: float, cy: float, radius: float
) -> ShapeSpec:
    """A shape of ``kind`` at (cx, cy) with random angle, aspect and kind-specific detail."""
    angle = float(rng.uniform(0, np.pi))
    aspect = float(rng.uniform(0.55, 1.0)) if kind != "star" else 1.0
    detail: tuple[float, ...] = ()
    if kind == "star":
        detail = (float(rng.integers(5, 8)),)
    elif kind == "polygon":
        detail = (float(rng.integers(5, 9)),)
    elif kind == "blob":
        detail = tuple(
            float(v) for k in range(3) for v in (rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi))
        )
    return ShapeSpec(kind, float(cx), float(cy), float(radius), angle, aspect, detail)
