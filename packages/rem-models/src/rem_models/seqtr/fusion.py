"""SeqTR's bottom-up fusion of the three scales, gated by the sentence feature.

mid = cat(pool(conv(low)), mid); top = cat(pool(conv(mid)), top); x = conv1(conv3(top));
the output is tanh(x) * tanh(sentence) (the sentence broadcast over positions).
"""

from __future__ import annotations

import torch
from torch import nn

from rem_models.seqtr.darknet import ConvBN


class SimpleFusion(nn.Module):
    """Features at strides (8, 16, 32) with channels ``vis_channels`` -> (B, C_top, H/32, W/32).

    ``sentence`` (B, C_top) must have the top level's width (2 x GRU hidden = 1024).
    """

    def __init__(self, vis_channels: tuple[int, int, int] = (256, 512, 1024)) -> None:
        super().__init__()
        low, mid, top = vis_channels
        both = low + mid
        self.down_bot2mid = nn.Sequential(nn.AvgPool2d(2, 2), ConvBN(low, low, 3))
        self.down_mid2top = nn.Sequential(nn.AvgPool2d(2, 2), ConvBN(both, both, 3))
        self.top_project = nn.Sequential(
            ConvBN(both + top, both + top, 3), ConvBN(both + top, top, 1)
        )

    def forward(self, features: list[torch.Tensor], sentence: torch.Tensor) -> torch.Tensor:
        low, mid, top = features
        mid = torch.cat([self.down_bot2mid(low), mid], 1)
        top = torch.cat([self.down_mid2top(mid), top], 1)
        x = self.top_project(top)
        return torch.tanh(x) * torch.tanh(sentence[:, :, None, None])
