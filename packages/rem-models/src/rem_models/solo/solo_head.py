"""The SOLO head (Wang et al., ECCV 2020): one mask channel per grid cell.

Per level, the mask branch (input + 2 coordinate channels, ``stacked_convs`` x (3x3 conv, GN,
ReLU), x2 bilinear upsampling, a level-specific 1x1 conv to S^2 channels) predicts a mask for
every cell at twice the level's resolution; the category branch (the input resized to S x S,
the same tower without coordinates, a 3x3 conv to C channels) predicts each cell's class.
Parameter names are the reference's (``ins_convs``, ``cate_convs``, ``solo_ins_list``,
``solo_cate``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.solo.grid_head import DEFAULT_LOSS, GridHead, LossSettings
from rem_models.solo.layers import ConvNormAct, solo_levels, with_coords
from rem_models.solo.targets import GridAssigner

PRIOR_PROB = 0.01  # initial foreground probability of category (and SOLO mask) logits


def tower(
    in_channels: int, channels: int, depth: int, norm_groups: int, **kw: object
) -> nn.ModuleList:
    """``depth`` x (3x3 conv, GN, ReLU), the first taking ``in_channels``."""
    return nn.ModuleList(
        ConvNormAct(in_channels if i == 0 else channels, channels, 3, norm_groups=norm_groups, **kw)  # type: ignore[arg-type]
        for i in range(depth)
    )


def init_tower(convs: nn.ModuleList) -> None:
    """The reference's init: N(0, 0.01) conv weights (norms keep ones / zeros)."""
    for m in convs:
        nn.init.normal_(m.conv.weight, std=0.01)


def init_prior(conv: nn.Conv2d) -> None:
    """N(0, 0.01) weights, bias so that sigmoid(output) starts at PRIOR_PROB."""
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))


class SOLOHead(GridHead):
    """SOLO head over FPN levels P2..P6 (see the module docstring).

    ``forward(features)`` -> ``{"masks": [(N, S_l^2, 2h_l, 2w_l) logits], "cate": [(N, C, S_l,
    S_l) logits]}`` where (h_l, w_l) is level l's input size (P2 halved, P6 resized to P5).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        *,
        grids: Sequence[int],
        strides: Sequence[int],
        assigner: GridAssigner,
        channels: int = 256,
        stacked_convs: int = 7,
        norm_groups: int = 32,
        loss: LossSettings = DEFAULT_LOSS,
    ) -> None:
        super().__init__(num_classes, grids, strides, assigner, loss)
        self.ins_convs = tower(in_channels + 2, channels, stacked_convs, norm_groups)
        self.cate_convs = tower(in_channels, channels, stacked_convs, norm_groups)
        self.solo_ins_list = nn.ModuleList(nn.Conv2d(channels, s * s, 1) for s in grids)
        self.solo_cate = nn.Conv2d(channels, num_classes, 3, padding=1)
        init_tower(self.ins_convs)
        init_tower(self.cate_convs)
        for conv in self.solo_ins_list:
            init_prior(conv)
        init_prior(self.solo_cate)

    def forward(self, features: Sequence[Tensor]) -> dict[str, list[Tensor]]:
        masks, cate = [], []
        for level, x in enumerate(solo_levels(list(features))):
            m = with_coords(x)
            for conv in self.ins_convs:
                m = conv(m)
            m = F.interpolate(m, scale_factor=2.0, mode="bilinear", align_corners=False)
            masks.append(self.solo_ins_list[level](m))
            c = F.interpolate(x, size=self.grids[level], mode="bilinear", align_corners=False)
            for conv in self.cate_convs:
                c = conv(c)
            cate.append(self.solo_cate(c))
        return {"masks": masks, "cate": cate}

    def losses(
        self,
        outputs: Mapping[str, list[Tensor]],
        targets: Sequence[Mapping[str, Tensor]],
        pad_size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """``loss_ins`` (Dice on each positive cell's mask) and ``loss_cate`` (focal)."""
        assignments = self.assign(targets, pad_size)
        logits, goals = [], []
        cache: dict[tuple[int, int], Tensor] = {}
        for level, level_masks in enumerate(outputs["masks"]):
            size = (level_masks.shape[-2], level_masks.shape[-1])
            # Masks are predicted at twice the level's resolution: stride / 2.
            stride = self.strides[level] // 2
            for n, per_image in enumerate(assignments):
                cells, owners = per_image[level].owners()
                if cells.numel() == 0:
                    continue
                logits.append(level_masks[n, cells])
                full = self.targets_at(cache, n, targets[n]["masks"], stride, size)
                goals.append(full[owners])
        anchor = sum(m.sum() for m in outputs["masks"])
        return {
            "loss_ins": self.dice(logits, goals, anchor),  # type: ignore[arg-type]
            "loss_cate": self.category_loss(outputs["cate"], assignments),
        }

    def mask_fn(self, outputs: Mapping[str, object], index: int) -> Callable[[Tensor], Tensor]:
        levels: list[Tensor] = outputs["masks"]  # type: ignore[assignment]
        size = (levels[0].shape[-2], levels[0].shape[-1])
        return self.resized_masks(lambda level, local: levels[level][index, local], size)
