"""Inputs of the SAM refinement at the 1024 scale: resized image, source masks and noisy boxes.

Frames (refine.md §1.3-1.5):

* original image (H, W);
* resized image (h', w'): the long side becomes 1024, computed with detectron2's
  ``ResizeShortestEdge(1024, max_size=1024)`` arithmetic and resampled with PIL bilinear;
* SAM canvas 1024 x 1024: the resized image at the top-left, zero padding bottom and right, so
  (x, y) in the resized frame is (x, y) on the canvas.

Boxes are XYXY with inclusive pixel indices; points are (x, y) pixel indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from rem_core.masks import clean_polygons, decode, rle_size, to_rle

CANVAS = 1024


class SourceMaskError(ValueError):
    """The annotation's segmentation cannot be rasterised (reason in the message)."""


def resized_shape(height: int, width: int, target: int = CANVAS) -> tuple[int, int]:
    """(h', w') after ``ResizeShortestEdge(target, max_size=target)``: the long side -> target.

    The float steps follow detectron2 so that rounding agrees with the reference to the pixel:
    scale the short side to ``target``, rescale if the long side then exceeds it, round half up.
    """
    scale = target / min(height, width)
    if height < width:
        new_h, new_w = float(target), scale * width
    else:
        new_h, new_w = scale * height, float(target)
    if max(new_h, new_w) > target:
        rescale = target / max(new_h, new_w)
        new_h, new_w = new_h * rescale, new_w * rescale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample an (H, W, 3) uint8 RGB image to ``shape`` (h', w') with PIL bilinear."""
    h2, w2 = shape
    if image.shape[:2] == (h2, w2):
        return image
    return np.asarray(Image.fromarray(image).resize((w2, h2), Image.Resampling.BILINEAR))


def source_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """The (H, W) bool mask of a COCO segmentation at the original resolution."""
    if isinstance(segmentation, Mapping):
        _check_rle(segmentation, height, width)
        return decode(segmentation).astype(bool)
    polygons = _usable_polygons(segmentation)
    return decode(to_rle(polygons, height, width)).astype(bool)


def resized_source_mask(
    segmentation: Any, height: int, width: int, shape: tuple[int, int]
) -> np.ndarray:
    """The (h', w') bool source mask G of a segmentation of an (H, W) image (refine.md §1.4).

    Polygons are scaled by (w'/W, h'/H) and rasterised at h' x w' by pycocotools; RLE
    (compressed or uncompressed) is decoded at H x W and resized nearest-neighbour (PIL).
    """
    h2, w2 = shape
    if isinstance(segmentation, Mapping):
        _check_rle(segmentation, height, width)
        mask = np.ascontiguousarray(decode(segmentation))
        if (height, width) == (h2, w2):
            return mask.astype(bool)
        small = Image.fromarray(mask).resize((w2, h2), Image.Resampling.NEAREST)
        return np.asarray(small).astype(bool)
    polygons = _usable_polygons(segmentation)
    sx, sy = w2 / width, h2 / height
    scaled = []
    for poly in polygons:
        # An odd trailing number is ignored, as pycocotools does.
        xy = np.asarray(poly[: len(poly) // 2 * 2], dtype=np.float64).reshape(-1, 2)
        xy = xy * np.array([sx, sy])
        scaled.append(xy.ravel().tolist())
    return decode(to_rle(scaled, h2, w2)).astype(bool)


def _check_rle(rle: Mapping[str, Any], height: int, width: int) -> None:
    if "counts" not in rle or "size" not in rle:
        raise SourceMaskError("RLE segmentation needs 'size' and 'counts'")
    if rle_size(rle) != (height, width):
        raise SourceMaskError(
            f"RLE size {list(rle_size(rle))} differs from the image size {[height, width]}"
        )


def _usable_polygons(segmentation: Any) -> list[list[float]]:
    if not isinstance(segmentation, list | tuple) or not segmentation:
        raise SourceMaskError("segmentation is neither polygons nor an RLE dict")
    polygons, _ = clean_polygons(segmentation)
    if not polygons:
        raise SourceMaskError("degenerate polygon (fewer than 3 points)")
    return polygons


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive XYXY extremes of a (h, w) mask; (0, 0, 0, 0) when it is empty (SAM amg)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def noisy_boxes(
    box: tuple[int, int, int, int], normals: np.ndarray, limits: tuple[float, float]
) -> np.ndarray:
    """Expand ``box`` by |N(0, sigma^2)| per side for each trial; (T, 4) float64 XYXY.

    sigma = min(0.1 * box width, 10) for x and min(0.1 * box height, 10) for y, where width is
    x2 - x1 of the inclusive box. ``normals`` (T, 4) are standard normals for x1, y1, x2, y2.
    Coordinates are clamped to [0, x_max] x [0, y_max] with ``limits = (x_max, y_max)``: (1023,
    1023) for the reference's canvas clamp, (w' - 1, h' - 1) for the image clamp.
    """
    x1, y1, x2, y2 = box
    sx = min(0.1 * (x2 - x1), 10.0)
    sy = min(0.1 * (y2 - y1), 10.0)
    noise = np.abs(normals) * np.array([sx, sy, sx, sy])
    boxes = np.array([x1, y1, x2, y2], dtype=np.float64) + noise * np.array([-1, -1, 1, 1])
    x_max, y_max = limits
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, x_max)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, y_max)
    return boxes
