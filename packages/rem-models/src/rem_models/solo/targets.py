"""SOLO's location-based label assignment: which grid cells own which instance.

For each pyramid level, an instance is assigned when the square root of its box area lies in the
level's scale range. Its cells are the grid cell holding the mask's centre of mass plus the cells
of a centre region (the box shrunk by ``sigma`` around that centre), clipped to the 3 x 3
neighbourhood of the centre cell. Grid coordinates divide the padded input image into S x S
cells. Later instances overwrite earlier ones' category labels where their regions overlap, as
in the reference implementation.

Mask targets are the instance masks at the resolution a head predicts them, obtained as the
reference does with ``mmcv.imrescale`` (bilinear resampling of the 0/1 mask, rounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class LevelAssignment:
    """One image's assignment on one level with an S x S grid.

    ``labels``: (S * S,) int64 category per cell, ``background`` where unassigned.
    ``cells`` / ``instances``: (P,) int64, the (cell, instance) pairs in assignment order; a cell
    covered by two instances appears twice (SOLOv2 trains both), while the category label and
    :meth:`owners` keep the last one (SOLO's dense targets).
    """

    labels: Tensor
    cells: Tensor
    instances: Tensor

    def owners(self) -> tuple[Tensor, Tensor]:
        """Positive cells in increasing order and, for each, the instance assigned last."""
        if self.cells.numel() == 0:
            return self.cells, self.instances
        order = torch.arange(self.cells.numel(), device=self.cells.device)
        # For every cell keep the pair with the largest assignment order (the last write).
        last = torch.full_like(self.labels, -1).scatter_reduce(
            0, self.cells, order, reduce="amax", include_self=True
        )
        cells = (last >= 0).nonzero().flatten()
        return cells, self.instances[last[cells]]


@dataclass(frozen=True)
class GridAssigner:
    """The assignment settings of one head: :func:`assign_levels` bound to them."""

    grids: tuple[int, ...]
    scale_ranges: tuple[tuple[float, float], ...]
    sigma: float
    min_mask_pixels: int
    background: int

    def __call__(
        self, boxes: Tensor, labels: Tensor, masks: Tensor, pad_size: tuple[int, int]
    ) -> list[LevelAssignment]:
        return assign_levels(
            boxes,
            labels,
            masks,
            pad_size,
            grids=self.grids,
            scale_ranges=self.scale_ranges,
            sigma=self.sigma,
            min_mask_pixels=self.min_mask_pixels,
            background=self.background,
        )


def _cell(value: float, size: int, grid: int) -> int:
    # The reference's exact float arithmetic: int((v / size) // (1 / S)).
    return int((value / size) // (1.0 / grid))


def assign_levels(
    boxes: Tensor,
    labels: Tensor,
    masks: Tensor,
    pad_size: tuple[int, int],
    *,
    grids: Sequence[int],
    scale_ranges: Sequence[tuple[float, float]],
    sigma: float,
    min_mask_pixels: int,
    background: int,
) -> list[LevelAssignment]:
    """Assign one image's instances to the cells of every level's grid.

    ``boxes`` (G, 4) XYXY, ``labels`` (G,) 0-based, ``masks`` (G, Hp, Wp) 0/1 in the padded
    input frame of size ``pad_size`` = (Hp, Wp). Instances whose mask has fewer than
    ``min_mask_pixels`` pixels are not assigned (SOLO: 10, SOLOv2: 1). G may be 0.
    """
    device = labels.device
    hp, wp = pad_size
    g = int(labels.numel())
    if g:
        widths = (boxes[:, 2] - boxes[:, 0]).double()
        heights = (boxes[:, 3] - boxes[:, 1]).double()
        scales = torch.sqrt(widths * heights).tolist()
        flat = masks.reshape(g, hp, wp)
        pixels = flat.sum(dim=(1, 2), dtype=torch.float64)
        xs = torch.arange(wp, device=device, dtype=torch.float64)
        ys = torch.arange(hp, device=device, dtype=torch.float64)
        cx = (flat.sum(dim=1, dtype=torch.float64) * xs).sum(-1) / pixels.clamp(min=1)
        cy = (flat.sum(dim=2, dtype=torch.float64) * ys).sum(-1) / pixels.clamp(min=1)
        stats = torch.stack([pixels, cx, cy, widths, heights]).cpu().tolist()
        label_list = labels.tolist()
    out = []
    for grid, (low, high) in zip(grids, scale_ranges):
        cell_labels = torch.full((grid * grid,), background, dtype=torch.int64)
        cells: list[int] = []
        owners: list[int] = []
        for i in range(g):
            pixels_i, cx_i, cy_i, w_i, h_i = (stats[k][i] for k in range(5))
            if not low <= scales[i] <= high or pixels_i < min_mask_pixels:
                continue
            half_w, half_h = 0.5 * w_i * sigma, 0.5 * h_i * sigma
            col, row = _cell(cx_i, wp, grid), _cell(cy_i, hp, grid)
            top = max(0, _cell(cy_i - half_h, hp, grid), row - 1)
            bottom = min(grid - 1, _cell(cy_i + half_h, hp, grid), row + 1)
            left = max(0, _cell(cx_i - half_w, wp, grid), col - 1)
            right = min(grid - 1, _cell(cx_i + half_w, wp, grid), col + 1)
            for r in range(top, bottom + 1):
                for c in range(left, right + 1):
                    cell_labels[r * grid + c] = label_list[i]
                    cells.append(r * grid + c)
                    owners.append(i)
        out.append(
            LevelAssignment(
                cell_labels.to(device),
                torch.tensor(cells, dtype=torch.int64, device=device),
                torch.tensor(owners, dtype=torch.int64, device=device),
            )
        )
    return out


def mask_targets(masks: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """(G, Hp, Wp) 0/1 masks -> (G, H, W) uint8 targets at 1/``stride`` resolution.

    As ``mmcv.imrescale(mask, 1 / stride)``: bilinear sampling at pixel centres, rounded (a
    target pixel is on when at least half of its interpolated value is), written into the top
    left of an (H, W) zero canvas (the head's mask resolution).
    """
    g, hp, wp = masks.shape
    out = torch.zeros((g, *size), dtype=torch.uint8, device=masks.device)
    if g == 0:
        return out
    h = min(int(hp / stride + 0.5), size[0])
    w = min(int(wp / stride + 0.5), size[1])
    small = F.interpolate(
        masks[:, None].float(),
        size=(int(hp / stride + 0.5), int(wp / stride + 0.5)),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    out[:, :h, :w] = (small[:, :h, :w] >= 0.5).to(torch.uint8)
    return out
