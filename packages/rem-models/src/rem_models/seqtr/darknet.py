"""DarkNet-53 with SeqTR's extra layers: the visual encoder, outputs at strides 8, 16 and 32.

Module names follow SeqTR (``darknet.<k>.{conv,bn}``, ``darknet.<k>.module_list.<b>.<0|1>``)
so released checkpoints load by name. Each conv is conv (no bias) + BN + LeakyReLU(0.1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class ConvBN(nn.Module):
    """conv (no bias, 'same' padding) -> BatchNorm -> LeakyReLU(0.1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DarknetBlock(nn.Module):
    """``num_blocks`` bottlenecks (1x1 to ch/2, 3x3 back to ch), residual if ``shortcut``."""

    def __init__(self, ch: int, num_blocks: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.module_list = nn.ModuleList(
            nn.ModuleList([ConvBN(ch, ch // 2, 1), ConvBN(ch // 2, ch, 3)])
            for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pair in self.module_list:
            y = pair[1](pair[0](x))
            x = x + y if self.shortcut else y
        return x


class DarkNet53(nn.Module):
    """Images (B, 3, H, W) RGB 0-255 -> features at strides 8, 16, 32 (modules 6, 8 and last).

    Everything but the last ``trainable_modules`` modules has ``requires_grad=False`` (SeqTR
    freezes the detector-pretrained body); BatchNorm still follows ``train()``/``eval()``.
    """

    def __init__(
        self,
        stem: int = 32,
        blocks: tuple[int, ...] = (1, 2, 8, 8, 4),
        extra_blocks: int = 2,
        trainable_modules: int = 2,
    ) -> None:
        super().__init__()
        w = [stem * 2**i for i in range(6)]  # 32, 64, 128, 256, 512, 1024
        layers: list[nn.Module] = [ConvBN(3, w[0], 3), ConvBN(w[0], w[1], 3, 2)]
        layers.append(DarknetBlock(w[1], blocks[0]))
        for i in range(1, 5):
            layers += [ConvBN(w[i], w[i + 1], 3, 2), DarknetBlock(w[i + 1], blocks[i])]
        if extra_blocks:
            layers.append(DarknetBlock(w[5], extra_blocks, shortcut=False))
        layers += [ConvBN(w[5], w[4], 1), ConvBN(w[4], w[5], 3)]
        self.darknet = nn.ModuleList(layers)
        self.out_layers = (6, 8, len(layers) - 1)
        self.out_channels = (w[3], w[4], w[5])
        frozen = len(layers) - trainable_modules
        for module in list(self.darknet)[: max(frozen, 0)]:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = images
        for i, module in enumerate(self.darknet):
            x = module(x)
            if i in self.out_layers:
                outs.append(x)
        return outs


def conv_layers(model: DarkNet53) -> list[ConvBN]:
    """The ConvBN layers in the order Darknet's binary files store them."""
    return [m for m in model.darknet.modules() if isinstance(m, ConvBN)]


def load_darknet_weights(model: DarkNet53, path: str | Path) -> int:
    """Fill ``model`` from a Darknet ``.weights`` file; returns the number of convs loaded.

    Layout: a header of five int32 (major, minor, revision, images seen as int64), then per
    conv with BN, float32 BN bias, BN weight, running mean, running var and the conv weight.
    Files such as ``darknet53.conv.74`` hold only the first convs; loading stops where the data
    ends, and a file that ends inside a conv is an error. Values after the last conv of the
    network (the heads of a full YOLOv3 detector file) are ignored.
    """
    from rem_core.errors import RemError

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    if len(raw) < 20:
        raise RemError("too short for a Darknet weights header", path=path)
    values = torch.from_numpy(np.frombuffer(raw[20:], dtype="<f4").copy())
    offset = loaded = 0
    with torch.no_grad():
        for layer in conv_layers(model):
            if offset >= len(values):
                break
            bn, conv = layer.bn, layer.conv
            need = 4 * bn.num_features + conv.weight.numel()
            if offset + need > len(values):
                raise RemError(
                    f"file ends inside conv {loaded} ({len(values) - offset} of {need} values)",
                    path=path,
                )
            for target in (bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight):
                n = target.numel()
                target.copy_(values[offset : offset + n].view_as(target))
                offset += n
            loaded += 1
    return loaded
