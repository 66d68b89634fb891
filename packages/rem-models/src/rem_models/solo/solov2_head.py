"""The SOLOv2 head (Wang et al., NeurIPS 2020): dynamic mask kernels per grid cell.

Per level, the input plus 2 coordinate channels is resized to S x S; the kernel branch
(``stacked_convs`` x (3x3 conv, GN, ReLU), then ``solo_kernel``) predicts, for each cell, the
E weights of a 1x1 conv; the category branch reads the same resized input without coordinates.
A cell's mask is sigmoid(F * kernel) where F is the shared E-channel mask feature at stride 4
(:mod:`rem_models.solo.mask_feature`, supplied by the detector under ``"feature"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.grid_head import DEFAULT_LOSS, GridHead, LossSettings
from rem_models.solo.layers import ConvNormAct, solo_levels, with_coords
from rem_models.solo.solo_head import init_prior, init_tower
from rem_models.solo.targets import GridAssigner


def dcn_tower(
    in_channels: int,
    channels: int,
    depth: int,
    norm_groups: int,
    dcn: str | None,
    dcn_convs: str,
) -> nn.ModuleList:
    """A conv tower whose convs are deformable: all of them, or only the last (light heads)."""

    def kind(i: int) -> str | None:
        if dcn is None:
            return None
        return dcn if dcn_convs == "all" or i == depth - 1 else None

    return nn.ModuleList(
        ConvNormAct(
            in_channels if i == 0 else channels, channels, 3, norm_groups=norm_groups, dcn=kind(i)
        )
        for i in range(depth)
    )


def dynamic_masks(feature: Tensor, kernels: Tensor) -> Tensor:
    """Mask logits (M, H, W) of one image: 1x1 convs of ``feature`` (E, H, W) with (M, E)."""
    e, h, w = feature.shape
    return (kernels @ feature.reshape(e, h * w)).reshape(-1, h, w)


class SOLOv2Head(GridHead):
    """SOLOv2 kernel and category branches over FPN levels P2..P6.

    ``forward(features)`` -> ``{"kernels": [(N, E, S_l, S_l)], "cate": [(N, C, S_l, S_l)]}``;
    losses and inference also need ``"feature"``: (N, E, H/4, W/4) from the mask-feature head.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        *,
        grids: Sequence[int],
        strides: Sequence[int],
        assigner: GridAssigner,
        channels: int = 512,
        stacked_convs: int = 4,
        kernel_channels: int = 256,
        norm_groups: int = 32,
        dcn: str | None = None,
        dcn_convs: str = "all",
        loss: LossSettings = DEFAULT_LOSS,
    ) -> None:
        super().__init__(num_classes, grids, strides, assigner, loss)
        self.kernel_convs = dcn_tower(
            in_channels + 2, channels, stacked_convs, norm_groups, dcn, dcn_convs
        )
        self.cate_convs = dcn_tower(
            in_channels, channels, stacked_convs, norm_groups, dcn, dcn_convs
        )
        self.solo_cate = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.solo_kernel = nn.Conv2d(channels, kernel_channels, 3, padding=1)
        init_tower(self.kernel_convs)
        init_tower(self.cate_convs)
        init_prior(self.solo_cate)
        nn.init.normal_(self.solo_kernel.weight, std=0.01)
        nn.init.zeros_(self.solo_kernel.bias)

    def forward(self, features: Sequence[Tensor]) -> dict[str, list[Tensor]]:
        kernels, cate = [], []
        for level, x in enumerate(solo_levels(list(features))):
            grid = self.grids[level]
            k = F.interpolate(with_coords(x), size=grid, mode="bilinear", align_corners=False)
            c = k[:, :-2]
            for conv in self.kernel_convs:
                k = conv(k)
            kernels.append(self.solo_kernel(k))
            for conv in self.cate_convs:
                c = conv(c)
            cate.append(self.solo_cate(c))
        return {"kernels": kernels, "cate": cate}

    def losses(
        self,
        outputs: Mapping[str, object],
        targets: Sequence[Mapping[str, Tensor]],
        pad_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """``loss_ins``: Dice of every (cell, instance) pair, duplicates included (as the
        reference); ``loss_cate``: focal loss."""
        kernels: list[Tensor] = outputs["kernels"]  # type: ignore[assignment]
        feature: Tensor = outputs["feature"]  # type: ignore[assignment]
        assignments = self.assign(targets, pad_size)
        size = (feature.shape[-2], feature.shape[-1])
        logits, goals = [], []
        cache: dict[tuple[int, int], Tensor] = {}
        for level, level_kernels in enumerate(kernels):
            for n, per_image in enumerate(assignments):
                a = per_image[level]
                if a.cells.numel() == 0:
                    continue
                chosen = level_kernels[n].flatten(1)[:, a.cells].T  # (P, E)
                logits.append(dynamic_masks(feature[n], chosen))
                full = self.targets_at(cache, n, targets[n]["masks"], 4, size)
                goals.append(full[a.instances])
        anchor = feature.sum() + sum(k.sum() for k in kernels)
        return {
            "loss_ins": self.dice(logits, goals, anchor),
            "loss_cate": self.category_loss(outputs["cate"], assignments),  # type: ignore[arg-type]
        }

    def mask_fn(self, outputs: Mapping[str, object], index: int) -> Callable[[Tensor], Tensor]:
        kernels: list[Tensor] = outputs["kernels"]  # type: ignore[assignment]
        feature: Tensor = outputs["feature"][index]  # type: ignore[index]
        flat = torch.cat([k[index].flatten(1).T for k in kernels])  # (sum S^2, E)

        def fn(cells: Tensor) -> Tensor:
            return dynamic_masks(feature.float(), flat[cells].float()).sigmoid()

        return fn
