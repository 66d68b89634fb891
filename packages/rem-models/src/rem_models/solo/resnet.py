"""ResNet / ResNeXt backbone from torchvision's blocks, with mmdetection's training habits.

The module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` ...), which are also the names under ``backbone.`` in the SOLO and
AggMask checkpoints, so torchvision's ImageNet files load directly (their ``fc`` is dropped).
As mmdetection's ``ResNet(style='pytorch')``: the stride of a stage sits on its 3x3 conv,
BatchNorm layers stay in eval mode during training (``norm_eval``), and the stem plus the first
``frozen_stages`` stages are frozen. Stages listed in ``stage_with_dcn`` swap each bottleneck's
3x3 conv for a deformable one (the SOLOv2 DCN models).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from rem_core.errors import RemError
from rem_models.solo.deform_conv import DeformConv2d

# Blocks per stage of the standard depths.
STAGE_BLOCKS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet returning the four stage outputs C2..C5 (strides 4, 8, 16, 32).

    ``planes`` are the per-stage base widths (64, 128, 256, 512 for every standard depth; the
    outputs have ``planes * expansion`` channels); smaller values and ``blocks`` give the tiny
    test backbones. ``groups`` / ``width_per_group`` make a ResNeXt (64 / 4: X-101 64x4d).
    ``dcn``: None, ``"dcn"`` (v1) or ``"dcnv2"`` (modulated) for the stages in
    ``stage_with_dcn``. Input: (N, 3, H, W) normalised images.
    """

    def __init__(
        self,
        depth: int = 50,
        *,
        blocks: Sequence[int] | None = None,
        stem_channels: int = 64,
        planes: Sequence[int] = (64, 128, 256, 512),
        groups: int = 1,
        width_per_group: int = 64,
        frozen_stages: int = 1,
        norm_eval: bool = True,
        dcn: str | None = None,
        stage_with_dcn: Sequence[bool] = (False, False, False, False),
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        block, default_blocks = STAGE_BLOCKS[depth]
        blocks = tuple(blocks) if blocks is not None else default_blocks
        if len(blocks) != 4 or len(planes) != 4 or len(stage_with_dcn) != 4:
            raise ValueError("blocks, planes and stage_with_dcn need one entry per stage (4)")
        if dcn is not None and block is not Bottleneck and any(stage_with_dcn):
            raise ValueError("deformable convs are only supported in bottleneck blocks")
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem_channels
        self.out_channels: list[int] = []
        for i, (n, width) in enumerate(zip(blocks, planes)):
            stride = 1 if i == 0 else 2
            layers = []
            for b in range(n):
                downsample = None
                out = width * block.expansion
                if b == 0 and (stride != 1 or inplanes != out):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(out),
                    )
                unit = block(
                    inplanes,
                    width,
                    stride if b == 0 else 1,
                    downsample,
                    groups=groups,
                    base_width=width_per_group,
                )
                if dcn is not None and stage_with_dcn[i]:
                    unit.conv2 = _deformable_like(unit.conv2, modulated=dcn == "dcnv2")
                layers.append(unit)
                inplanes = out
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels.append(inplanes)
        self._freeze()

    def _freeze(self) -> None:
        frozen = [self.conv1, self.bn1] if self.frozen_stages >= 0 else []
        frozen += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        if mode:
            frozen = [self.conv1, self.bn1] if self.frozen_stages >= 0 else []
            frozen += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
            for module in frozen:
                module.eval()
            if self.norm_eval:
                # Batches of 2 images per GPU give useless statistics: keep ImageNet's.
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            outs.append(x)
        return outs


def _deformable_like(conv: nn.Conv2d, *, modulated: bool) -> DeformConv2d:
    """A deformable conv with the geometry of ``conv`` (a bottleneck's 3x3)."""
    return DeformConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size[0],
        stride=conv.stride[0],
        padding=conv.padding[0],
        dilation=conv.dilation[0],
        groups=conv.groups,
        bias=conv.bias is not None,
        modulated=modulated,
    )


def imagenet_backbone_state(
    state: Mapping[str, Tensor], backbone: ResNet, *, source: str = "weights"
) -> dict[str, Tensor]:
    """The backbone tensors of a torchvision ImageNet classifier file (``fc`` dropped).

    Every backbone parameter and buffer must be present with the right shape, except the
    offset branches of deformable convs, which ImageNet classifiers do not have (they keep
    their zero init), and BatchNorm's ``num_batches_tracked`` counters, which files saved
    before torch 0.4.1 lack (mmdet's ``torchvision://resnet50`` is one). Raises :class:`RemError` naming the first missing or misshapen key.
    """
    own = backbone.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in own.items():
        if ".conv_offset" in key or (key.endswith("num_batches_tracked") and key not in state):
            out[key] = value
            continue
        if key not in state:
            raise RemError(f"ImageNet weights lack backbone tensor {key!r}", path=source)
        if tuple(state[key].shape) != tuple(value.shape):
            raise RemError(
                f"ImageNet tensor {key!r} has shape {tuple(state[key].shape)}, the backbone "
                f"needs {tuple(value.shape)}",
                path=source,
            )
        out[key] = state[key].to(value.dtype)
    unknown = sorted(k for k in state if k not in own and not k.startswith("fc."))
    if unknown:
        raise RemError(
            f"{len(unknown)} tensors are not ResNet backbone tensors, e.g. {unknown[0]!r}",
            path=source,
        )
    return out
