"""From grid predictions to instances: SOLO's inference, shared by every head of the family.

Per image: category probabilities after the 2x2 local-max filter, thresholded at
``score_thr``, give candidate (cell, class) pairs; each cell's mask probabilities (at stride 4)
are binarised at ``mask_thr``; candidates whose mask is not larger than their level's stride
are dropped; scores are multiplied by the mean probability inside the mask ("maskness"); the
``nms_pre`` best go through Matrix NMS; those still above ``update_thr`` are kept, at most
``max_per_img``. Masks are finally upsampled to the padded input, cropped to the image, resized
to the output size and thresholded.

Heads supply a ``mask_fn(cells) -> probabilities`` so that only masks of candidate cells are
ever computed (the reference computes all S^2 masks of every level), in bounded chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rem_models.solo.config import InferenceConfig
from rem_models.solo.matrix_nms import matrix_nms

MaskFn = Callable[[Tensor], Tensor]
"""``cells`` (M,) flat cell indices -> (M, H4, W4) mask probabilities at stride 4."""

_CHUNK = 128  # masks computed at once while measuring candidates
# Candidate masks kept between measuring and Matrix NMS up to this many numbers (1 GiB of
# float32, ~4000 stride-4 masks of a 800 x 1333 input); beyond, survivors are recomputed.
_KEEP_LIMIT = 1 << 28


@dataclass
class Candidates:
    """(cell, class) pairs above the score threshold: all (K,)."""

    scores: Tensor
    labels: Tensor
    cells: Tensor
    strides: Tensor


def grid_candidates(
    cate_probs: Sequence[Tensor], strides: Sequence[int], score_thr: float
) -> Candidates:
    """Candidates of one image from per-level (S_l * S_l, C) filtered category probabilities.

    Cells are numbered level after level, row-major within a level.
    """
    scores, labels, cells, level_strides = [], [], [], []
    offset = 0
    for probs, stride in zip(cate_probs, strides):
        hit = (probs > score_thr).nonzero()
        scores.append(probs[hit[:, 0], hit[:, 1]])
        cells.append(hit[:, 0] + offset)
        labels.append(hit[:, 1])
        level_strides.append(torch.full_like(hit[:, 0], stride, dtype=probs.dtype))
        offset += probs.shape[0]
    return Candidates(
        torch.cat(scores), torch.cat(labels), torch.cat(cells), torch.cat(level_strides)
    )


def _measure(
    mask_fn: MaskFn, cells: Tensor, mask_thr: float, keep_limit: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Pixel count and mean probability of each cell's binarised mask, chunk by chunk; also
    the probabilities themselves when they hold at most ``keep_limit`` numbers (else None:
    the few that survive are computed again rather than holding every candidate's mask)."""
    areas, maskness, kept = [], [], []
    for start in range(0, cells.numel(), _CHUNK):
        probs = mask_fn(cells[start : start + _CHUNK]).float()
        on = probs > mask_thr
        area = on.sum(dim=(1, 2)).float()
        areas.append(area)
        maskness.append((probs * on).sum(dim=(1, 2)) / area.clamp(min=1.0))
        if kept is not None:
            kept.append(probs)
            if sum(k.numel() for k in kept) > keep_limit:
                kept = None
    stored = torch.cat(kept) if kept else None
    return torch.cat(areas), torch.cat(maskness), stored


def select_instances(
    candidates: Candidates, mask_fn: MaskFn, cfg: InferenceConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the SOLO inference steps on one image's candidates.

    Returns ``(probs, scores, labels)``: (D, H4, W4) mask probabilities at stride 4 of the
    padded input, (D,) decayed scores (descending) and (D,) 0-based labels; D may be 0.
    """
    cells = candidates.cells
    if cells.numel() == 0:
        return _empty(mask_fn, cells)
    unique, inverse = torch.unique(cells, return_inverse=True)
    areas, maskness, stored = _measure(mask_fn, unique, cfg.mask_thr, _KEEP_LIMIT)
    area = areas[inverse]
    keep = area > candidates.strides
    if not bool(keep.any()):
        return _empty(mask_fn, cells)
    scores = candidates.scores[keep] * maskness[inverse[keep]]
    labels = candidates.labels[keep]
    rows, area = inverse[keep], area[keep]  # rows of ``unique``
    order = torch.argsort(scores, descending=True)[: cfg.nms_pre]
    scores, labels, rows, area = scores[order], labels[order], rows[order], area[order]

    if stored is not None:
        probs = stored[rows]
    else:
        chosen, back = torch.unique(rows, return_inverse=True)
        probs = mask_fn(unique[chosen]).float()[back]
    decayed = matrix_nms(
        probs > cfg.mask_thr, labels, scores, kernel=cfg.kernel, sigma=cfg.sigma, areas=area
    )
    keep = decayed >= cfg.update_thr
    decayed, labels, probs = decayed[keep], labels[keep], probs[keep]
    order = torch.argsort(decayed, descending=True)[: cfg.max_per_img]
    return probs[order], decayed[order], labels[order]


def _empty(mask_fn: MaskFn, cells: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    probs = mask_fn(cells[:0]).float()
    return probs, probs.new_zeros(0), cells.new_zeros(0)


def paste_masks(
    probs: Tensor,
    pad_size: tuple[int, int],
    image_size: tuple[int, int],
    output_size: tuple[int, int],
    mask_thr: float,
    *,
    chunk: int = 16,
) -> Tensor:
    """(D, H4, W4) stride-4 probabilities -> (D, H_out, W_out) bool masks.

    As the reference: bilinear upsampling to the padded input (``pad_size``), crop to the
    resized image (``image_size``), bilinear resize to ``output_size``, threshold. Done in
    chunks of masks so a full-resolution float copy of every mask never exists at once.
    """
    d = probs.shape[0]
    out = torch.zeros((d, *output_size), dtype=torch.bool, device=probs.device)
    h, w = image_size
    for start in range(0, d, chunk):
        part = probs[start : start + chunk][None]
        part = F.interpolate(part, size=pad_size, mode="bilinear", align_corners=False)
        part = part[:, :, :h, :w]
        part = F.interpolate(part, size=output_size, mode="bilinear", align_corners=False)
        out[start : start + chunk] = part[0] > mask_thr
    return out


def boxes_from_masks(masks: Tensor) -> Tensor:
    """Tight (D, 4) float32 XYXY boxes (pixel edges) around (D, H, W) bool masks; 0 if empty."""
    d = masks.shape[0]
    boxes = torch.zeros((d, 4), dtype=torch.float32, device=masks.device)
    if d == 0:
        return boxes
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (D, H), (D, W)
    present = rows.any(dim=1)
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(dim=1).values
    y1 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x0 = torch.where(cols, ar_w, w).min(dim=1).values
    x1 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    found = torch.stack([x0, y0, x1, y1], dim=1).float()
    boxes[present] = found[present]
    return boxes
