"""SeqTR's image pipelines: fit-in-square resize for testing, large-scale jitter for training.

Images are (H, W, 3) uint8 RGB arrays; boxes XYXY pixels of the same image; masks (H, W) bool.
Nothing is normalised (SeqTR feeds 0-255 RGB). Padding to a multiple of 32 happens in the
model; :func:`collate` only stacks images into the top-left corner of a zero batch.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from rem_core.errors import RemError


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, EXIF orientation applied."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except FileNotFoundError:
        raise RemError("no such image", path=path) from None


def _resize(image: np.ndarray, mask: np.ndarray | None, scale: float):
    h, w = image.shape[:2]
    size = (max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if mask is not None:
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return image, mask


def fit_scale(height: int, width: int, input_size: int) -> float:
    """Scale that makes the image fit in input_size x input_size (aspect kept)."""
    return min(input_size / height, input_size / width)


def test_transform(
    image: np.ndarray, input_size: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Resize to fit in ``input_size``^2; returns (image, mask, scale)."""
    scale = fit_scale(image.shape[0], image.shape[1], input_size)
    image, mask = _resize(image, mask, scale)
    return image, mask, scale


def _crop_offset(size: int, window: int, lo: float, hi: float, rng: np.random.Generator) -> int:
    """A crop start in [0, size - window] keeping [lo, hi] inside when it fits, else inside it."""
    last = size - window
    if last <= 0:
        return 0
    if hi - lo <= window:  # whole extent fits: start between hi - window and lo
        a, b = max(0, int(np.ceil(hi - window))), min(last, int(np.floor(lo)))
    else:  # too long: the window lies inside the extent
        a, b = max(0, int(np.ceil(lo))), min(last, int(np.floor(hi - window)))
    if a > b:
        a, b = 0, last
    return int(rng.integers(a, b + 1))


def lsj_transform(
    image: np.ndarray,
    box: np.ndarray,
    rng: np.random.Generator,
    input_size: int,
    mask: np.ndarray | None = None,
    scale_range: tuple[float, float] = (0.3, 1.4),
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Large-scale jitter with a GT-aware crop; no flip (sentences say left and right).

    The long side becomes input_size * U(scale_range); an image larger than input_size is
    cropped to input_size x input_size at a random offset that keeps the whole GT box when it
    fits (else a window inside the box), so the target is never cut away. Returns (image,
    box XYXY clipped to the crop, mask).
    """
    h, w = image.shape[:2]
    scale = input_size * rng.uniform(*scale_range) / max(h, w)
    image, mask = _resize(image, mask, scale)
    box = np.asarray(box, dtype=np.float64) * scale
    h, w = image.shape[:2]
    x0 = _crop_offset(w, input_size, box[0], box[2], rng)
    y0 = _crop_offset(h, input_size, box[1], box[3], rng)
    x1, y1 = min(w, x0 + input_size), min(h, y0 + input_size)
    image = image[y0:y1, x0:x1]
    if mask is not None:
        mask = mask[y0:y1, x0:x1]
    box = box - [x0, y0, x0, y0]
    box = np.clip(box, 0, [x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    return np.ascontiguousarray(image), box.astype(np.float32), mask


def collate(images: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """(B, 3, Hmax, Wmax) float batch (images top-left, zeros elsewhere) and their (h, w)."""
    sizes = [(im.shape[0], im.shape[1]) for im in images]
    hmax = max(h for h, _ in sizes)
    wmax = max(w for _, w in sizes)
    batch = torch.zeros((len(images), 3, hmax, wmax))
    for i, im in enumerate(images):
        batch[i, :, : im.shape[0], : im.shape[1]] = torch.from_numpy(im).permute(2, 0, 1).float()
    return batch, sizes
