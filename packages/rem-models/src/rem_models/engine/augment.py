"""Geometric training augmentation of an image with its instance masks (LSJ, resize, flip).

Masks are transformed as bitmaps, not polygons, because COCO-ReM stores every mask as RLE.
Boxes are then recomputed from the transformed masks (detectron2's ``recompute_boxes``), so a
crop that cuts an object leaves a tight box around what remains. Coordinates follow the
pixel-centre convention of OpenCV's resize: pixel (x, y) covers [x, x+1) x [y, y+1).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rem_models.engine.config import AugmentConfig

# OpenCV's area resize takes at most 4 channels per call (other paths take more, not all).
_MAX_CHANNELS = 4


@dataclass(frozen=True)
class Geometry:
    """Where the output comes from: flip, resize to (out_h, out_w), then crop (y0, x0, h, w)."""

    flip: bool
    out_h: int
    out_w: int
    y0: int
    x0: int
    crop_h: int
    crop_w: int


def sample_geometry(h: int, w: int, cfg: AugmentConfig, rng: np.random.Generator) -> Geometry:
    """Draw the flip, scale and crop for an (h, w) image.

    LSJ follows detectron2's ``ResizeScale`` + ``FixedSizeCrop``: the image is scaled to fit a
    square of side ``scale * image_size`` (rounded to whole pixels), then cropped to at most
    ``image_size`` squared at an offset of ``round(u * slack)`` with one uniform ``u`` shared by
    both axes.
    """
    flip = bool(cfg.flip and rng.random() < 0.5)
    if cfg.kind == "lsj":
        scale = rng.uniform(cfg.min_scale, cfg.max_scale)
        target = scale * cfg.image_size
        factor = min(target / h, target / w)
    elif cfg.kind == "resize":
        factor = cfg.image_size / max(h, w)
    else:
        factor = 1.0
    out_h, out_w = max(1, round(h * factor)), max(1, round(w * factor))
    crop_h, crop_w = out_h, out_w
    y0 = x0 = 0
    if cfg.kind == "lsj":
        crop_h, crop_w = min(out_h, cfg.image_size), min(out_w, cfg.image_size)
        u = rng.uniform(0.0, 1.0)
        y0, x0 = round((out_h - crop_h) * u), round((out_w - crop_w) * u)
    return Geometry(flip, out_h, out_w, y0, x0, crop_h, crop_w)


def _resize_crop(planes: np.ndarray, g: Geometry, interpolation_down: int) -> np.ndarray:
    """Resize (H, W, C) ``planes`` to (out_h, out_w) and crop, computing only the crop.

    Shrinking uses ``interpolation_down`` on the whole image (area averaging avoids aliasing);
    enlarging warps straight into the crop window, so a 2x jitter never builds the full image.
    """
    h, w = planes.shape[:2]
    if g.out_h <= h and g.out_w <= w:
        resized = cv2.resize(planes, (g.out_w, g.out_h), interpolation=interpolation_down)
        resized = resized.reshape(g.out_h, g.out_w, -1)
        return resized[g.y0 : g.y0 + g.crop_h, g.x0 : g.x0 + g.crop_w]
    sx, sy = g.out_w / w, g.out_h / h
    # Inverse map, pixel centres: src = (dst + offset + 0.5) / s - 0.5.
    inverse = np.array(
        [[1 / sx, 0, (g.x0 + 0.5) / sx - 0.5], [0, 1 / sy, (g.y0 + 0.5) / sy - 0.5]],
        dtype=np.float64,
    )
    out = cv2.warpAffine(
        planes,
        inverse,
        (g.crop_w, g.crop_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(g.crop_h, g.crop_w, -1)


def apply_geometry(
    image: np.ndarray, masks: np.ndarray, g: Geometry
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``g`` to an (H, W, 3) uint8 image and (N, H, W) uint8 0/1 masks."""
    if g.flip:
        image = image[:, ::-1]
        masks = masks[:, :, ::-1]
    h, w = image.shape[:2]
    identity = (g.out_h, g.out_w) == (h, w) and (g.crop_h, g.crop_w) == (h, w)
    if identity:
        return np.ascontiguousarray(image), np.ascontiguousarray(masks)
    image = _resize_crop(np.ascontiguousarray(image), g, cv2.INTER_AREA)
    out = np.zeros((masks.shape[0], g.crop_h, g.crop_w), dtype=np.uint8)
    for start in range(0, masks.shape[0], _MAX_CHANNELS):
        chunk = np.ascontiguousarray(masks[start : start + _MAX_CHANNELS].transpose(1, 2, 0))
        # 0/255 so that interpolated values threshold at half coverage.
        warped = _resize_crop(chunk * np.uint8(255), g, cv2.INTER_AREA)
        out[start : start + chunk.shape[2]] = (warped >= 128).transpose(2, 0, 1)
    return image, out


def augment_sample(
    image: np.ndarray, masks: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment an image and its masks; returns ``(image, masks, keep)``.

    ``keep`` is a bool (N,) array of the instances that still cover at least
    ``cfg.min_mask_pixels`` pixels; the returned masks are already filtered by it.
    """
    g = sample_geometry(image.shape[0], image.shape[1], cfg, rng)
    image, masks = apply_geometry(image, masks, g)
    keep = masks.reshape(masks.shape[0], -1).sum(axis=1) >= cfg.min_mask_pixels
    return image, masks[keep], keep


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight (N, 4) float32 XYXY boxes (pixel edges) of (N, H, W) masks; empty masks give 0s."""
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    present = rows.any(axis=1)
    h, w = masks.shape[1:]
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    boxes[present] = np.stack([x0, y0, x1, y1], axis=1)[present]
    return boxes
