"""Peak stimulation (PRM): class peaks of response maps, their mean, and CIM's peak selection.

A peak of a (H, W) class response map is a cell that is the maximum of its 3x3 window (the
window padded with -inf; among equal values the one ``max_pool2d(return_indices=True)`` returns,
i.e. the first in row-major order on the CPU) and at least the map's median (``torch.median``:
the lower middle value), PRM's median filter that drops maxima of the flat background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PEAK_THRESHOLD = 10.0


def peak_map(maps: torch.Tensor, window: int = 3) -> torch.Tensor:
    """(B, C, H, W) bool: the peaks of each (image, class) map (see the module docstring)."""
    with torch.no_grad():
        b, c, h, w = maps.shape
        pad = window // 2
        padded = F.pad(maps, (pad, pad, pad, pad), value=float("-inf"))
        _, indices = F.max_pool2d(padded, window, stride=1, return_indices=True)
        # max_pool2d returns flat indices into the padded map; a cell is a peak when its own
        # window names it.
        own = torch.arange((h + 2 * pad) * (w + 2 * pad), device=maps.device)
        own = own.view(1, 1, h + 2 * pad, w + 2 * pad)[:, :, pad : pad + h, pad : pad + w]
        median = maps.flatten(2).median(dim=2).values.view(b, c, 1, 1)
        return (indices == own) & (maps >= median)


def peak_aggregation(maps: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """(B, C) mean response at each map's peaks; the gradient reaches the peak cells only
    (``peaks`` is a constant mask), each with 1 / (number of peaks)."""
    weights = peaks.to(maps.dtype)
    count = weights.flatten(2).sum(dim=2).clamp_min(1.0)
    return (maps * weights).flatten(2).sum(dim=2) / count


@dataclass(frozen=True)
class ClassPeak:
    """A peak: 0-based class, (row, col) in the peak frame, response value."""

    category: int
    row: int
    col: int
    score: float


def select_peaks(
    maps: torch.Tensor, classes: Sequence[int], threshold: float = PEAK_THRESHOLD
) -> list[ClassPeak]:
    """CIM's peaks of one image's (C, H, W) maps for its image-level ``classes``.

    For each class: its peaks with response > ``threshold``, or, when none is, its single
    strongest peak, so every labelled class gets a point. All kept peaks are returned by score
    ascending (ties: class, then row-major), the order in which later, stronger peaks overwrite
    earlier cluster assignments.
    """
    peaks = peak_map(maps[None])[0]
    kept: list[ClassPeak] = []
    for c in sorted(set(int(k) for k in classes)):
        rows, cols = torch.nonzero(peaks[c], as_tuple=True)
        values = maps[c, rows, cols]
        strong = values > threshold
        if strong.any():
            chosen = torch.nonzero(strong).flatten().tolist()
        else:
            chosen = [int(torch.argmax(values))]  # first of equal maxima (row-major)
        kept += [ClassPeak(c, int(rows[i]), int(cols[i]), float(values[i])) for i in chosen]
    order = np.argsort([p.score for p in kept], kind="stable")
    return [kept[i] for i in order]


def frame_to_pixel(row: int, col: int, frame: int, height: int, width: int) -> tuple[int, int]:
    """(x, y) image pixel of peak-frame cell (row, col): ``int(col * W / frame)``,
    ``int(row * H / frame)``, CIM's mapping onto an (H, W) proposal mask."""
    return int(col * width / frame), int(row * height / frame)


@torch.no_grad()
def image_peaks(
    model: torch.nn.Module,
    image: torch.Tensor,
    classes: Sequence[int],
    threshold: float = PEAK_THRESHOLD,
) -> list[ClassPeak]:
    """Peaks of one preprocessed (3, S, S) image under ``model`` (a PRM) in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    maps = model.response_maps(image[None].to(device))[0].float().cpu()
    return select_peaks(maps, classes, threshold)
