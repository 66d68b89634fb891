"""Coordinates <-> tokens: SeqTR's quantisation, contour sampling and polygon decoding.

Frames: coordinates are pixels of the padded network input (``pad`` = (W, H) of the image
padded to a multiple of 32). A coordinate c becomes bin floor(c / pad * num_bins), and a bin
b maps back to b * pad / num_bins (no half-bin offset, as SeqTR). Token ``num_bins`` is END.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils


def quantize(coords: torch.Tensor, pad_wh: torch.Tensor, num_bins: int) -> torch.Tensor:
    """(B, 2K) interleaved x, y pixels, pad (B, 2) as (W, H) -> (B, 2K) bins in [0, num_bins).

    Out-of-range values are clamped (SeqTR meant to clamp but clamped a copy).
    """
    scale = pad_wh.repeat(1, coords.shape[1] // 2).to(coords.dtype)
    bins = torch.floor(coords / scale * num_bins).long()
    return bins.clamp_(0, num_bins - 1)


def dequantize(tokens: torch.Tensor, pad_wh: torch.Tensor, num_bins: int) -> torch.Tensor:
    """(B, 2K) bins -> pixels of the padded frame (x with W, y with H)."""
    scale = pad_wh.repeat(1, tokens.shape[1] // 2).to(torch.float32)
    return tokens.float() * scale / num_bins


def contour_points(mask: np.ndarray, num_ray: int) -> np.ndarray:
    """(H, W) binary mask -> (n <= num_ray, 2) float32 (x, y) points of its largest contour.

    The outer contour of largest area is kept; when it has more than ``num_ray`` points, every
    ceil(n / num_ray)-th point is kept (SeqTR's sampling). An empty mask gives (0, 2).
    """
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    if not contours:
        return np.zeros((0, 2), np.float32)
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    points = largest.reshape(-1, 2).astype(np.float32)
    if len(points) > num_ray:
        points = points[:: -(-len(points) // num_ray)]
    return points


def mask_token_targets(
    points: torch.Tensor, valid: torch.Tensor, pad_wh: torch.Tensor, num_bins: int
) -> torch.Tensor:
    """Contour points (B, R, 2), validity (B, R) -> tokens (B, 2R + 1): x, y bins, END-padded.

    Padding becomes END through the validity mask (SeqTR relied on the -1 pad surviving
    quantisation, which fails once the padded size reaches num_bins); a final END is appended.
    """
    b, r, _ = points.shape
    tokens = quantize(points.reshape(b, 2 * r), pad_wh, num_bins)
    pad = ~valid.repeat_interleave(2, dim=1)
    tokens = tokens.masked_fill(pad, num_bins)
    return torch.cat([tokens, tokens.new_full((b, 1), num_bins)], dim=1)


def box_token_targets(boxes: torch.Tensor, pad_wh: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Boxes (B, 4) XYXY pixels -> tokens (B, 5): x1, y1, x2, y2 bins and END."""
    tokens = quantize(boxes, pad_wh, num_bins)
    return torch.cat([tokens, tokens.new_full((boxes.shape[0], 1), num_bins)], dim=1)


def shuffle_points(
    tokens: torch.Tensor, valid: torch.Tensor, fraction: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Permute the valid points of ``fraction`` of the rows of (B, 2R) point tokens.

    SeqTR permuted all slots, padding included, which scatters END tokens inside the sequence;
    here only valid points move, so END still closes the contour.
    """
    b = tokens.shape[0]
    count = int(b * fraction)
    if count <= 0:
        return tokens
    tokens = tokens.clone()
    rows = torch.randperm(b, generator=generator)[:count]
    for row in rows.tolist():
        n = int(valid[row].sum())
        pts = tokens[row, : 2 * n].reshape(n, 2)
        tokens[row, : 2 * n] = pts[torch.randperm(n, generator=generator)].reshape(-1)
    return tokens


def tokens_to_polygon(tokens: list[int], pad_wh: tuple[float, float], num_bins: int) -> list[float]:
    """Decoded mask tokens -> flat [x1, y1, ...] pixels: cut at END, drop an odd last value."""
    values = []
    for t in tokens:
        if t >= num_bins:
            break
        values.append(int(t))
    if len(values) % 2:
        values = values[:-1]
    w, h = pad_wh
    return [v * (w if i % 2 == 0 else h) / num_bins for i, v in enumerate(values)]


def rasterize(polygon: list[float], height: int, width: int) -> np.ndarray:
    """Flat polygon -> (H, W) bool mask with pycocotools' rasteriser (SeqTR's).

    Fewer than 4 values give an empty mask; exactly 4 values are read as an XYWH box, which
    is what ``pycocotools.frPyObjects`` does with a 4-value polygon in SeqTR's evaluation.
    """
    if len(polygon) < 4:
        return np.zeros((height, width), dtype=bool)
    if len(polygon) == 4:  # pycocotools' frPyObjects branch for 4-number lists
        rles = mask_utils._mask.frBbox(np.asarray([polygon], dtype=np.float64), height, width)
    else:
        rles = mask_utils.frPyObjects([list(map(float, polygon))], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
