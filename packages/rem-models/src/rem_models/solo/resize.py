"""Keep-ratio rescaling of images and instance masks, as mmdetection 1.x's ``Resize``.

A scale (long, short) rescales an (H, W) image by ``min(long / max(H, W), short / min(H, W))``
to ``(int(H * f + 0.5), int(W * f + 0.5))`` (``mmcv.imrescale``). Images are resampled
bilinearly and rounded to whole values (the reference resizes uint8 images); masks by nearest
neighbour; boxes are scaled by the actual width and height factors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def rescaled_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(H', W') of an (H, W) image rescaled to fit ``scale`` = (long, short) edges."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(3, H, W) 0-255 image -> (3, H', W'), bilinear, rounded to integers."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)
    return out[0].round().clamp(0, 255)


def resize_target(target: Mapping[str, Tensor], size: tuple[int, int]) -> dict[str, Tensor]:
    """A target dict (``boxes`` XYXY, ``labels``, ``masks`` (G, H, W)) at image size ``size``."""
    masks = target["masks"]
    h, w = masks.shape[-2:]
    out = dict(target)
    if (h, w) == tuple(size):
        return out
    if masks.shape[0]:
        out["masks"] = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0].to(
            masks.dtype
        )
    else:
        out["masks"] = masks.new_zeros((0, *size))
    sx, sy = size[1] / w, size[0] / h
    out["boxes"] = target["boxes"] * torch.tensor([sx, sy, sx, sy], device=masks.device)
    return out
