"""Anchor boxes for the RPN: one set of cell anchors per pyramid level, tiled over its grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """``(len(sizes) * len(ratios), 4)`` XYXY anchors centred on (0, 0), sizes outer.

    A ratio ``a`` is height / width at constant area ``size ** 2``; coordinates are not
    rounded (torchvision rounds them, detectron2 and ViTDet do not).
    """
    anchors = []
    for size in sizes:
        area = float(size) ** 2
        for ratio in aspect_ratios:
            w = math.sqrt(area / ratio)
            h = ratio * w
            anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors, dtype=torch.float32)


class AnchorGenerator(nn.Module):
    """Anchors for each feature level: ``strides[i]`` pixels apart, cell anchors of
    ``sizes[i]`` and every aspect ratio.

    The anchors of a level are ordered (y, x, anchor): index ``(y * W + x) * A + a``, which is
    the order the RPN head's outputs are flattened in.
    """

    def __init__(
        self,
        sizes: Sequence[float],
        aspect_ratios: Sequence[float],
        strides: Sequence[int],
        offset: float = 0.0,
    ) -> None:
        super().__init__()
        if len(sizes) != len(strides):
            raise ValueError(f"{len(sizes)} anchor sizes for {len(strides)} feature levels")
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"anchor offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = offset
        self.num_anchors = len(aspect_ratios)
        self.num_levels = len(sizes)
        for level, size in enumerate(sizes):
            # Not persistent: derived from the config, and detectron2 files do not carry them.
            self.register_buffer(f"cell_{level}", cell_anchors([size], aspect_ratios), False)

    def level_anchors(self, level: int, grid: tuple[int, int]) -> Tensor:
        """``(H * W * A, 4)`` anchors of ``level`` over a feature grid of ``grid`` (H, W)."""
        cell = getattr(self, f"cell_{level}")
        stride = self.strides[level]
        height, width = grid
        kwargs = {"dtype": torch.float32, "device": cell.device}
        shifts_x = torch.arange(self.offset * stride, width * stride, step=stride, **kwargs)
        shifts_y = torch.arange(self.offset * stride, height * stride, step=stride, **kwargs)
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
        return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Anchors per level for feature maps ``features[i]`` of shape (N, C, H_i, W_i)."""
        if len(features) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature maps, got {len(features)}")
        return [self.level_anchors(i, (f.shape[-2], f.shape[-1])) for i, f in enumerate(features)]
