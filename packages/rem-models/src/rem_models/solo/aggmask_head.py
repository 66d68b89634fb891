"""The AggMask head: SOLO's towers, a mask grid, and a learned per-cell mask aggregator.

As SOLO (:mod:`rem_models.solo.solo_head`) except: the mask branch predicts S_m^2 masks per
level (``mask_grids``) while categories use S_c x S_c (``grids``); a 3x3 conv on the category
tower's output (``learned_weights``, tanh) predicts every category cell's aggregator weights;
``context_fusion_convs`` fuse all pyramid levels into 16 context channels. A category cell's
mask is the aggregator run on its sampled neighbour mask logits plus the context
(:mod:`rem_models.solo.aggregator`). Targets are SOLO's, built on the category grid; masks are
trained and predicted at twice each level's resolution, then upsampled to stride 4.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo import aggregator as agg
from rem_models.solo.grid_head import DEFAULT_LOSS, GridHead, LossSettings
from rem_models.solo.layers import solo_levels, with_coords
from rem_models.solo.solo_head import init_prior, init_tower, tower
from rem_models.solo.targets import GridAssigner


class AggregatorSettings:
    """The aggregator's shape, derived once from the head's grids and settings."""

    def __init__(
        self,
        cls_grids: Sequence[int],
        mask_grids: Sequence[int],
        neighbours: str,
        context_channels: int,
        layers: int,
        kernel_size: int,
        hidden_channels: int,
    ) -> None:
        self.mode = agg.neighbour_mode(cls_grids, mask_grids, neighbours)
        self.num_neighbours = 5 if self.mode == "cross" else 4
        self.context_channels = context_channels
        self.layout = agg.weight_layout(
            self.num_neighbours + context_channels, layers, kernel_size, hidden_channels
        )
        self.num_weights = agg.weight_count(
            self.num_neighbours + context_channels, layers, kernel_size, hidden_channels
        )


class AggregatingHead(GridHead):
    """Shared parts of AggMask and AggMask*: neighbour tables, context, aggregation, losses.

    ``outputs`` hold ``"cate"``, ``"weights"`` (per level (N, W, S_c, S_c) aggregator weights)
    and ``"context"`` ((N, C_ctx, H/4, W/4) or None); subclasses say how mask logits of
    mask-grid cells are obtained (:meth:`sampled_logits`) and at which resolution.
    """

    settings: AggregatorSettings
    mask_grids: tuple[int, ...]

    def neighbours(self, level: int, device: torch.device) -> Tensor:
        """(S_c^2, K) flat mask-grid cells sampled for each category cell of ``level``."""
        cells = agg.neighbour_cells(
            self.grids[level], self.mask_grids[level], self.settings.mode, device
        )
        return cells[..., 0] * self.mask_grids[level] + cells[..., 1]

    def context_features(self, features: Sequence[Tensor]) -> Tensor | None:
        if self.settings.context_channels == 0:
            return None
        return agg.fuse_context(self.context_fusion_convs, features)

    @abc.abstractmethod
    def sampled_logits(
        self, outputs: Mapping[str, object], level: int, image: int, cells: Tensor
    ) -> Tensor:
        """(P, K, H_l, W_l) mask logits of the (P, K) mask-grid ``cells`` of one image."""

    @abc.abstractmethod
    def mask_size(self, outputs: Mapping[str, object], level: int) -> tuple[int, int]:
        """(H_l, W_l): resolution of the level's masks."""

    @abc.abstractmethod
    def target_stride(self, level: int) -> int:
        """Stride (input pixels) of the level's mask predictions and targets."""

    @abc.abstractmethod
    def anchor(self, outputs: Mapping[str, object]) -> Tensor:
        """Sum of every mask-side output (keeps an all-negative batch's graph whole)."""

    def aggregated(
        self, outputs: Mapping[str, object], level: int, image: int, cells: Tensor
    ) -> Tensor:
        """Aggregated mask logits (P, H_l, W_l) of category cells ``cells`` of one image."""
        weights: Tensor = outputs["weights"][level]  # type: ignore[index]
        context: Tensor | None = outputs["context"]  # type: ignore[assignment]
        size = self.mask_size(outputs, level)
        ctx = None
        if context is not None:
            ctx = agg.resize_context(context[image : image + 1], size)[0]
        sampled = self.sampled_logits(
            outputs, level, image, self.neighbours(level, cells.device)[cells]
        )
        cell_weights = weights[image].flatten(1)[:, cells].T  # (P, W)
        return agg.aggregate(agg.with_context(sampled, ctx), cell_weights, self.settings.layout)

    def losses(
        self,
        outputs: Mapping[str, object],
        targets: Sequence[Mapping[str, Tensor]],
        pad_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """``loss_ins`` (Dice of the aggregated masks of positive cells), ``loss_cate``."""
        assignments = self.assign(targets, pad_size)
        logits, goals = [], []
        cache: dict[tuple[int, int], Tensor] = {}
        for level in range(len(self.grids)):
            size = self.mask_size(outputs, level)
            stride = self.target_stride(level)
            for n, per_image in enumerate(assignments):
                cells, owners = per_image[level].owners()
                if cells.numel() == 0:
                    continue
                logits.append(self.aggregated(outputs, level, n, cells))
                full = self.targets_at(cache, n, targets[n]["masks"], stride, size)
                goals.append(full[owners])
        return {
            "loss_ins": self.dice(logits, goals, self.anchor(outputs)),
            "loss_cate": self.category_loss(outputs["cate"], assignments),  # type: ignore[arg-type]
        }

    def mask_fn(self, outputs: Mapping[str, object], index: int) -> Callable[[Tensor], Tensor]:
        size = self.mask_size(outputs, 0)  # level 0 masks are at stride 4
        return self.resized_masks(
            lambda level, local: self.aggregated(outputs, level, index, local), size
        )


class AggMaskHead(AggregatingHead):
    """AggMask over FPN levels P2..P6 (see the module docstring)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        *,
        grids: Sequence[int],
        mask_grids: Sequence[int],
        strides: Sequence[int],
        assigner: GridAssigner,
        aggregator: AggregatorSettings,
        channels: int = 256,
        stacked_convs: int = 7,
        norm_groups: int = 32,
        weight_kernel: int = 3,
        weight_activation: str = "tanh",
        weight_init_std: float | None = None,
        loss: LossSettings = DEFAULT_LOSS,
    ) -> None:
        super().__init__(num_classes, grids, strides, assigner, loss)
        self.mask_grids = tuple(mask_grids)
        self.settings = aggregator
        self.weight_activation = weight_activation
        self.ins_convs = tower(in_channels + 2, channels, stacked_convs, norm_groups)
        self.cate_convs = tower(in_channels, channels, stacked_convs, norm_groups)
        self.solo_ins_list = nn.ModuleList(nn.Conv2d(channels, s * s, 1) for s in mask_grids)
        self.solo_cate = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.learned_weights = nn.Conv2d(
            channels, aggregator.num_weights, weight_kernel, padding=weight_kernel // 2
        )
        if weight_init_std is not None:
            nn.init.normal_(self.learned_weights.weight, std=weight_init_std)
            nn.init.zeros_(self.learned_weights.bias)
        if aggregator.context_channels:
            self.context_fusion_convs = agg.context_fusion(
                in_channels, 5, aggregator.context_channels, norm_groups
            )
        init_tower(self.ins_convs)
        init_tower(self.cate_convs)
        for conv in self.solo_ins_list:
            init_prior(conv)
        init_prior(self.solo_cate)

    def forward(self, features: Sequence[Tensor]) -> dict[str, object]:
        masks, cate, weights = [], [], []
        for level, x in enumerate(solo_levels(list(features))):
            m = with_coords(x)
            for conv in self.ins_convs:
                m = conv(m)
            m = F.interpolate(m, scale_factor=2.0, mode="bilinear", align_corners=False)
            masks.append(self.solo_ins_list[level](m))
            c = F.interpolate(x, size=self.grids[level], mode="bilinear", align_corners=False)
            for conv in self.cate_convs:
                c = conv(c)
            w = self.learned_weights(c)
            weights.append(torch.tanh(w) if self.weight_activation == "tanh" else w)
            cate.append(self.solo_cate(c))
        return {
            "masks": masks,
            "cate": cate,
            "weights": weights,
            "context": self.context_features(features),
        }

    def sampled_logits(
        self, outputs: Mapping[str, object], level: int, image: int, cells: Tensor
    ) -> Tensor:
        return outputs["masks"][level][image][cells]  # type: ignore[index]

    def mask_size(self, outputs: Mapping[str, object], level: int) -> tuple[int, int]:
        masks: Tensor = outputs["masks"][level]  # type: ignore[index]
        return (masks.shape[-2], masks.shape[-1])

    def target_stride(self, level: int) -> int:
        # Masks come at twice the level's resolution, as in SOLO.
        return self.strides[level] // 2

    def anchor(self, outputs: Mapping[str, object]) -> Tensor:
        total = sum(m.sum() for m in outputs["masks"]) + sum(  # type: ignore[union-attr]
            w.sum()
            for w in outputs["weights"]  # type: ignore[union-attr]
        )
        if outputs["context"] is not None:
            total = total + outputs["context"].sum()  # type: ignore[union-attr]
        return total  # type: ignore[return-value]
