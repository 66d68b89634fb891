"""What the four SOLO-family heads share: the category grids, their loss and candidates.

A head predicts, per pyramid level l, category logits on an S_l x S_l grid and, for each cell,
a mask. Subclasses build the mask side; this base class turns category logits into the focal
loss and into per-image candidates, and routes mask requests for flat cell numbers (level after
level) to the level that owns each cell.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.config import InferenceConfig
from rem_models.solo.layers import points_nms
from rem_models.solo.losses import focal_loss, mean_dice
from rem_models.solo.postprocess import Candidates, grid_candidates, select_instances
from rem_models.solo.targets import GridAssigner, LevelAssignment, mask_targets


@dataclass(frozen=True)
class LossSettings:
    """Loss weights: Dice x ``dice_weight``; focal loss with ``alpha`` and ``gamma``."""

    dice_weight: float = 3.0
    alpha: float = 0.25
    gamma: float = 2.0


DEFAULT_LOSS = LossSettings()


class GridHead(nn.Module, metaclass=abc.ABCMeta):
    """Base of the SOLO-family heads (see the module docstring).

    ``grids`` are the category grids, ``strides`` the level strides used by the inference
    area filter, ``assigner`` the label assignment on those grids.
    """

    def __init__(
        self,
        num_classes: int,
        grids: Sequence[int],
        strides: Sequence[int],
        assigner: GridAssigner,
        loss: LossSettings,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.grids = tuple(grids)
        self.strides = tuple(strides)
        self.assigner = assigner
        self.loss_settings = loss
        self.cell_offsets = [0]
        for s in self.grids:
            self.cell_offsets.append(self.cell_offsets[-1] + s * s)

    # ----------------------------------------------------------------------------------------
    # training

    def assign(
        self, targets: Sequence[Mapping[str, Tensor]], pad_size: tuple[int, int]
    ) -> list[list[LevelAssignment]]:
        """Per image, per level assignments of padded-frame targets (boxes, labels, masks)."""
        return [self.assigner(t["boxes"], t["labels"], t["masks"], pad_size) for t in targets]

    def category_loss(
        self, cate_logits: Sequence[Tensor], assignments: list[list[LevelAssignment]]
    ) -> Tensor:
        """Focal loss over every cell of every level and image, / (#positive cells + 1)."""
        logits, labels = [], []
        positives = 0
        for level, level_logits in enumerate(cate_logits):
            logits.append(level_logits.permute(0, 2, 3, 1).reshape(-1, self.num_classes))
            for per_image in assignments:
                labels.append(per_image[level].labels)
                positives += int(per_image[level].owners()[0].numel())
        s = self.loss_settings
        return focal_loss(
            torch.cat(logits), torch.cat(labels), positives, alpha=s.alpha, gamma=s.gamma
        )

    def dice(self, logits: list[Tensor], targets: list[Tensor], anchor: Tensor) -> Tensor:
        """Weighted mean Dice of the positive masks (zero, still differentiable, if none)."""
        return mean_dice(logits, targets, anchor, self.loss_settings.dice_weight)

    @staticmethod
    def targets_at(
        cache: dict[tuple[int, int], Tensor],
        image: int,
        masks: Tensor,
        stride: int,
        size: tuple[int, int],
    ) -> Tensor:
        """Mask targets of image ``image`` at ``stride``, computed once per (image, stride)."""
        key = (image, stride)
        if key not in cache:
            cache[key] = mask_targets(masks, stride, size)
        return cache[key]

    # ----------------------------------------------------------------------------------------
    # inference

    def candidates(
        self, cate_logits: Sequence[Tensor], index: int, cfg: InferenceConfig
    ) -> Candidates:
        """Image ``index``'s (cell, class) pairs whose filtered probability exceeds score_thr."""
        probs = [
            points_nms(level[index : index + 1].float().sigmoid())[0]
            .permute(1, 2, 0)
            .reshape(-1, self.num_classes)
            for level in cate_logits
        ]
        return grid_candidates(probs, self.strides, cfg.score_thr)

    def by_level(
        self, cells: Tensor, fn: Callable[[int, Tensor], Tensor], size: tuple[int, int]
    ) -> Tensor:
        """Stack ``fn(level, local_cells)`` results (M_l, H, W) back in the order of ``cells``."""
        out = None
        for level in range(len(self.grids)):
            lo, hi = self.cell_offsets[level], self.cell_offsets[level + 1]
            where = ((cells >= lo) & (cells < hi)).nonzero().flatten()
            if where.numel() == 0:
                continue
            part = fn(level, cells[where] - lo)
            if out is None:
                out = part.new_zeros((cells.numel(), *part.shape[1:]))
            out[where] = part
        if out is None:
            return torch.zeros((0, *size), device=cells.device)
        return out

    def resized_masks(
        self, level_logits: Callable[[int, Tensor], Tensor], size: tuple[int, int]
    ) -> Callable[[Tensor], Tensor]:
        """``cells -> (M, H, W)`` probabilities: the sigmoid of ``level_logits(level, local
        cells)``, bilinearly resized to ``size`` where a level's masks are smaller (SOLO's
        coarser levels)."""

        def level_masks(level: int, local: Tensor) -> Tensor:
            probs = level_logits(level, local).float().sigmoid()
            if probs.shape[-2:] != size:
                probs = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)
                probs = probs[0]
            return probs

        return lambda cells: self.by_level(cells, level_masks, size)

    def instances(
        self, outputs: Mapping[str, object], index: int, cfg: InferenceConfig
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(probs at stride 4, scores, labels) of image ``index``; see select_instances."""
        cands = self.candidates(outputs["cate"], index, cfg)  # type: ignore[arg-type]
        return select_instances(cands, self.mask_fn(outputs, index), cfg)

    @abc.abstractmethod
    def mask_fn(self, outputs: Mapping[str, object], index: int) -> Callable[[Tensor], Tensor]:
        """``cells -> (M, H4, W4)`` mask probabilities of image ``index`` at stride 4."""
