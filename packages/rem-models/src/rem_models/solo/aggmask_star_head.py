"""The AggMask* head: a SOLOv2-like head with AggMask's per-cell aggregator.

Unlike SOLOv2 (and not key-compatible with it): the towers are 256 wide; the mask feature is
built inside the head from ``feature_convs`` (SOLOv2's level fusion, without norms or biases)
and ``solo_mask`` (1x1 conv + GN + ReLU), at P2's resolution; ``solo_kernel`` is a 1x1 conv; the
kernel tower resizes to the mask grid, the category tower and a third tower
(``kernel_convs_convcomb``, with coordinates) to the category grid, the latter feeding a 1x1
``learned_weights`` conv without activation. Mask logits of mask-grid cells are
sigmoid-free 1x1 convs of the mask feature with their kernels; the aggregator combines them
exactly as in AggMask. Every level's masks are at stride 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo import aggregator as agg
from rem_models.solo.aggmask_head import AggregatingHead, AggregatorSettings
from rem_models.solo.grid_head import DEFAULT_LOSS, LossSettings
from rem_models.solo.layers import ConvNormAct, solo_levels, with_coords
from rem_models.solo.mask_feature import NUM_LEVELS, fuse_levels, init_normal, level_convs
from rem_models.solo.solo_head import init_prior, init_tower, tower
from rem_models.solo.solov2_head import dynamic_masks
from rem_models.solo.targets import GridAssigner


class AggMaskStarHead(AggregatingHead):
    """AggMask* over FPN levels P2..P6 (see the module docstring).

    ``forward(features)`` -> ``{"feature": (N, E, H/4, W/4), "kernels": [(N, E, S_m, S_m)],
    "cate": [(N, C, S_c, S_c)], "weights": [(N, W, S_c, S_c)], "context": ... }``.
    """

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
        stacked_convs: int = 4,
        norm_groups: int = 32,
        weight_kernel: int = 1,
        weight_activation: str = "none",
        weight_init_std: float | None = None,
        loss: LossSettings = DEFAULT_LOSS,
    ) -> None:
        super().__init__(num_classes, grids, strides, assigner, loss)
        self.mask_grids = tuple(mask_grids)
        self.settings = aggregator
        self.weight_activation = weight_activation
        self.feature_convs = level_convs(in_channels, channels, norm_groups=None)
        self.kernel_convs = tower(in_channels + 2, channels, stacked_convs, norm_groups)
        self.kernel_convs_convcomb = tower(in_channels + 2, channels, stacked_convs, norm_groups)
        self.cate_convs = tower(in_channels, channels, stacked_convs, norm_groups)
        self.solo_kernel = nn.Conv2d(channels, channels, 1)
        self.solo_cate = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.solo_mask = ConvNormAct(channels, channels, 1, norm_groups=norm_groups)
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
        init_normal(self.feature_convs)
        init_tower(self.kernel_convs)
        init_tower(self.kernel_convs_convcomb)
        init_tower(self.cate_convs)
        init_prior(self.solo_cate)

    def forward(self, features: Sequence[Tensor]) -> dict[str, object]:
        kernels, cate, weights = [], [], []
        for level, x in enumerate(solo_levels(list(features))):
            coords = with_coords(x)
            k = F.interpolate(
                coords, size=self.mask_grids[level], mode="bilinear", align_corners=False
            )
            for conv in self.kernel_convs:
                k = conv(k)
            kernels.append(self.solo_kernel(k))
            c = F.interpolate(x, size=self.grids[level], mode="bilinear", align_corners=False)
            for conv in self.cate_convs:
                c = conv(c)
            cate.append(self.solo_cate(c))
            w = F.interpolate(coords, size=self.grids[level], mode="bilinear", align_corners=False)
            for conv in self.kernel_convs_convcomb:
                w = conv(w)
            w = self.learned_weights(w)
            weights.append(w.tanh() if self.weight_activation == "tanh" else w)
        feature = self.solo_mask(fuse_levels(self.feature_convs, list(features)[:NUM_LEVELS]))
        return {
            "feature": feature,
            "kernels": kernels,
            "cate": cate,
            "weights": weights,
            "context": self.context_features(features),
        }

    def sampled_logits(
        self, outputs: Mapping[str, object], level: int, image: int, cells: Tensor
    ) -> Tensor:
        # Only the sampled cells' masks are computed (the reference computes all S_m^2).
        feature: Tensor = outputs["feature"][image]  # type: ignore[index]
        kernels: Tensor = outputs["kernels"][level][image].flatten(1).T  # type: ignore[index]
        p, k = cells.shape
        masks = dynamic_masks(feature, kernels[cells.reshape(-1)])
        return masks.reshape(p, k, *masks.shape[-2:])

    def mask_size(self, outputs: Mapping[str, object], level: int) -> tuple[int, int]:
        feature: Tensor = outputs["feature"]  # type: ignore[assignment]
        return (feature.shape[-2], feature.shape[-1])

    def target_stride(self, level: int) -> int:
        return 4

    def anchor(self, outputs: Mapping[str, object]) -> Tensor:
        total = outputs["feature"].sum()  # type: ignore[union-attr]
        for name in ("kernels", "weights"):
            total = total + sum(t.sum() for t in outputs[name])  # type: ignore[union-attr]
        if outputs["context"] is not None:
            total = total + outputs["context"].sum()  # type: ignore[union-attr]
        return total
