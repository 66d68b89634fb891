"""ViTDet's simple feature pyramid: p2-p5 from the single stride-16 ViT map, p6 by pooling.

Each level resamples the last ViT feature map (transposed convolutions up, max-pool down),
then applies a 1x1 and a 3x3 convolution, each followed by a channel LayerNorm and no
activation. There is no top-down pathway, unlike FPN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from rem_models.vitdet.conv_norm import ConvNorm, LayerNorm2d


def resampler(dim: int, scale: float, eps: float = 1e-6) -> tuple[nn.Module, int]:
    """Layers taking a (N, dim, h, w) map to scale ``scale``, and their output channels."""
    if scale == 4.0:
        layers = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            LayerNorm2d(dim // 2, eps),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        )
        return layers, dim // 4
    if scale == 2.0:
        return nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)), dim // 2
    if scale == 1.0:
        return nn.Identity(), dim
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2), dim
    raise ValueError(f"pyramid scale factor {scale} is not one of 4, 2, 1, 0.5")


class PyramidLevel(nn.Module):
    """One pyramid output: ``resample`` -> 1x1 ``lateral`` + LN -> 3x3 ``output`` + LN."""

    def __init__(self, in_dim: int, out_channels: int, scale: float, eps: float = 1e-6) -> None:
        super().__init__()
        self.scale = scale
        self.resample, dim = resampler(in_dim, scale, eps)
        self.lateral = ConvNorm(dim, out_channels, 1, eps=eps)
        self.output = ConvNorm(out_channels, out_channels, 3, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.lateral(self.resample(x)))


class SimpleFeaturePyramid(nn.Module):
    """Backbone = ``vit`` + pyramid levels named ``p<log2 stride>``, plus ``p6`` if ``top_block``.

    Input: normalised, padded images (N, 3, H, W). Output: dict ``{"p2": (N, C, H/4, W/4),
    ..., "p6": (N, C, H/64, W/64)}`` from fine to coarse. ``vit`` must expose ``patch_size``
    and ``embed_dim`` and map images to (N, embed_dim, H / patch, W / patch).
    """

    def __init__(
        self,
        vit: nn.Module,
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        top_block: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.vit = vit
        stride = int(vit.patch_size)
        self.strides: dict[str, int] = {}
        levels = {}
        for scale in scale_factors:
            level_stride = int(stride / scale)
            name = f"p{int(math.log2(level_stride))}"
            levels[name] = PyramidLevel(int(vit.embed_dim), out_channels, scale, eps)
            self.strides[name] = level_stride
        self.levels = nn.ModuleDict(levels)
        self.top_block = top_block
        if top_block:
            last = max(self.strides.values())
            self.strides[f"p{int(math.log2(last)) + 1}"] = last * 2
        self.out_channels = out_channels

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.vit(images)
        out = {name: level(x) for name, level in self.levels.items()}
        if self.top_block:
            coarsest = max(self.levels, key=lambda name: self.strides[name])
            # Kernel 1, stride 2: subsampling p5, as detectron2's LastLevelMaxPool does.
            out[list(self.strides)[-1]] = F.max_pool2d(out[coarsest], kernel_size=1, stride=2)
        return out
