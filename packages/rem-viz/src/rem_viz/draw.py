"""Painting instance masks onto an image: filled, outlined, labelled, largest first.

Everything works on RGB uint8 images of shape (H, W, 3) and on :class:`MaskCrop` masks in the
same pixel frame. Painting is vectorised: every mask is written once into an owner map (which
instance a pixel shows), then a single blend colours all covered pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rem_viz.crops import MaskCrop

RGB = tuple[int, int, int]

BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def paint_order(masks: Sequence[MaskCrop]) -> np.ndarray:
    """Indices of ``masks`` from largest to smallest area (ties keep input order).

    Painting in this order leaves small objects on top, where they stay visible.
    """
    return np.argsort(-np.asarray([m.area for m in masks], np.int64), kind="stable")


def owner_map(masks: Sequence[MaskCrop], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 map of which mask each pixel shows (-1: none); later (smaller) masks win."""
    owner = np.full(shape, -1, np.int32)
    for i in paint_order(masks):
        m = masks[i]
        if not m.empty:
            owner[m.y0 : m.y1, m.x0 : m.x1][m.data] = i
    return owner


def outline_map(
    masks: Sequence[MaskCrop], shape: tuple[int, int], thickness: int = 1
) -> np.ndarray:
    """(H, W) bool map of the ``thickness``-pixel ring just outside each mask."""
    t = max(1, int(thickness))
    kernel = np.ones((2 * t + 1, 2 * t + 1), np.uint8)
    # A canvas padded by t keeps rings of masks touching the border inside the array.
    canvas = np.zeros((shape[0] + 2 * t, shape[1] + 2 * t), bool)
    for m in masks:
        if m.empty:
            continue
        padded = np.pad(m.data.view(np.uint8), t)
        ring = cv2.dilate(padded, kernel) > padded
        canvas[m.y0 : m.y1 + 2 * t, m.x0 : m.x1 + 2 * t] |= ring
    return canvas[t:-t, t:-t]


def color_layer(owner: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image with each pixel in ``colors[owner]`` (black where owner is -1)."""
    if len(colors) < 255:
        # A 256-entry table lookup, the fastest gather OpenCV has (index 0 means no owner).
        table = np.zeros((1, 256, 3), np.uint8)
        table[0, 1 : len(colors) + 1] = colors
        index = (owner + 1).astype(np.uint8)
        return cv2.LUT(cv2.merge([index, index, index]), table)
    padded = np.vstack([colors, np.zeros((1, 3), np.uint8)])  # row -1 serves owner -1
    return np.take(padded, owner, axis=0)


def blend(image: np.ndarray, where: np.ndarray, colors: np.ndarray, alpha: float) -> None:
    """In place: ``image[where] = (1 - alpha) * image[where] + alpha * colors``.

    ``colors`` is (3,) for one colour or (N, 3) with one row per selected pixel.
    """
    pixels = image[where].astype(np.float32)
    image[where] = np.rint(pixels * (1.0 - alpha) + np.asarray(colors, np.float32) * alpha).astype(
        np.uint8
    )


def label_anchor(mask: MaskCrop) -> tuple[int, int] | None:
    """(x, y) of the mask pixel farthest from the mask's edge (its thickest part).

    A centroid can fall outside a ring-shaped or bent object; this point cannot. Large masks are
    sampled every ``step`` pixels first: a label needs a good spot, not the exact optimum, and
    the sampled pixel is still a mask pixel.
    """
    if mask.empty:
        return None
    step = max(1, max(mask.data.shape) // 64)
    sampled = np.ascontiguousarray(mask.data[::step, ::step]).view(np.uint8)
    if not sampled.any():  # a thin object the sampling stepped over
        step, sampled = 1, mask.data.view(np.uint8)
    dist = cv2.distanceTransform(np.pad(sampled, 1), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return mask.x0 + (int(x) - 1) * step, mask.y0 + (int(y) - 1) * step


def font_scale(shape: tuple[int, int]) -> float:
    """Text size that stays readable from thumbnails to 4K images."""
    return float(np.clip(np.sqrt(shape[0] * shape[1]) / 1200.0, 0.35, 1.5))


def ascii_text(text: str) -> str:
    """OpenCV's Hershey fonts only draw ASCII; anything else becomes '?'."""
    return text.encode("ascii", "replace").decode("ascii")


def draw_label(
    image: np.ndarray,
    text: str,
    center: tuple[int, int],
    scale: float,
    *,
    fg: RGB = BLACK,
    bg: RGB = WHITE,
) -> None:
    """In place: ``text`` on a filled box centred on ``center`` (x, y), kept inside the image."""
    text = ascii_text(text)
    thickness = max(1, round(scale * 1.6))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(1, round(2 * scale))
    h, w = image.shape[:2]
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x0 = int(np.clip(center[0] - bw // 2, 0, max(0, w - bw)))
    y0 = int(np.clip(center[1] - bh // 2, 0, max(0, h - bh)))
    cv2.rectangle(image, (x0, y0), (x0 + bw - 1, y0 + bh - 1), bg, thickness=-1)
    cv2.putText(image, text, (x0 + pad, y0 + pad + th), _FONT, scale, fg, thickness, cv2.LINE_AA)


def paint_instances(
    image: np.ndarray,
    masks: Sequence[MaskCrop],
    colors: Sequence[RGB],
    *,
    labels: Sequence[str] | None = None,
    alpha: float = 0.55,
    outline: int = 1,
    outline_color: RGB = BLACK,
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 RGB uint8) with the masks filled, outlined and labelled.

    Masks are painted largest first, so a small object lying on a large one stays visible; its
    outline and label are drawn last. ``colors[i]`` and ``labels[i]`` belong to ``masks[i]``.
    ``outline=0`` draws no outline.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} of shape {image.shape}"
        )
    image = np.ascontiguousarray(image)
    if len(colors) != len(masks) or (labels is not None and len(labels) != len(masks)):
        raise ValueError("masks, colors and labels must have the same length")
    shape = (image.shape[0], image.shape[1])
    for m in masks:
        if m.image_shape != shape:
            raise ValueError(f"mask of size {m.image_shape} does not fit an image of size {shape}")
    out = image.copy()
    if not masks:
        return out
    owner = owner_map(masks, shape)
    # Whole-image OpenCV passes beat gathering the covered pixels with numpy: colour every
    # pixel by its owner, blend the whole image once, copy back the covered pixels.
    layer = color_layer(owner, np.asarray(colors, np.uint8).reshape(-1, 3))
    blended = cv2.addWeighted(image, 1.0 - alpha, layer, alpha, 0.0)
    cv2.copyTo(blended, (owner >= 0).view(np.uint8), out)
    if outline > 0:
        ring = outline_map(masks, shape, outline).view(np.uint8)
        cv2.copyTo(np.full_like(out, outline_color), ring, out)
    if labels is not None:
        scale = font_scale(shape)
        for i in paint_order(masks):
            anchor = label_anchor(masks[i])
            if anchor is not None and labels[i]:
                draw_label(out, labels[i], anchor, scale)
    return out


def dim(image: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """A greyed, darkened copy so that coloured marks stand out (used under difference views)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    toned = grey * (1.0 - strength) + 40.0 * strength
    return np.repeat(np.rint(toned).astype(np.uint8)[:, :, None], 3, axis=2)
