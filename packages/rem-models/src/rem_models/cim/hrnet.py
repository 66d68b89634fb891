"""HRNet-W48-C, the ImageNet *classification* HRNetV2, as CIM's third backbone.

CIM keeps the classification network up to its last feature map: stem (two stride-2 3x3 convs),
layer1 (4 Bottlenecks), stages 2/3/4 (1/4/3 modules of 4 BasicBlocks per branch, branches
W/2W/4W/8W), then the classification head's incre modules (Bottlenecks to 128/256/512/1024
channels), stride-2 downsampling convs and a 1x1 conv to 2048 channels. No pooling, no
classifier: the output is (B, 2048, H/32, W/32) after zero-padding the input to a multiple of 32
on the right and bottom, so box coordinates are unchanged.

Input normalisation: CIM's ``transform_mode: ToTensor`` feeds RGB scaled to 0-1 and normalised
with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), as the ImageNet
weights expect. :class:`rem_models.cim.model.CimModel` computes ``(x - 255 * mean) / (255 * std)``
on 0-255 RGB, which is the same number, so HRNet needs no input change (CIM's extra rounding of
the resized image to uint8 is not reproduced).

The network itself is timm's ``HighResolutionNet`` (an optional dependency: ``pip install
rem-models[hrnet]``), whose parameter names are those of the official HRNet-Image-Classification
checkpoints (``conv1``, ``layer1``, ``transition1``, ``stage2``, ``incre_modules``,
``downsamp_modules``, ``final_layer``...), so ``hrnetv2_w48_imagenet_pretrained.pth`` loads
as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from rem_core.errors import RemError

STRIDE = 32
CHANNELS = 2048
# Submodules that FREEZE_AT = 1 and 2 add to the frozen part (CIM's stage 1, stage 2).
_FROZEN_PARTS = (("conv1", "bn1", "conv2", "bn2", "layer1"), ("transition1", "stage2"))


def _timm_hrnet() -> ModuleType:
    try:
        from timm.models import hrnet
    except ImportError:
        raise RemError("the HRNet backbone needs timm: pip install 'rem-models[hrnet]'") from None
    return hrnet


def hrnet_cls_config(width: int = 48) -> dict:
    """timm's architecture dict of HRNet-W``width``-C (branches W, 2W, 4W, 8W, 4 blocks each)."""

    def stage(modules: int, block: str, channels: tuple[int, ...]) -> dict:
        return {
            "num_modules": modules,
            "num_branches": len(channels),
            "block_type": block,
            "num_blocks": (4,) * len(channels),
            "num_channels": channels,
            "fuse_method": "SUM",
        }

    w = width
    return {
        "stem_width": 64,
        "stage1": stage(1, "BOTTLENECK", (64,)),
        "stage2": stage(1, "BASIC", (w, 2 * w)),
        "stage3": stage(4, "BASIC", (w, 2 * w, 4 * w)),
        "stage4": stage(3, "BASIC", (w, 2 * w, 4 * w, 8 * w)),
    }


class HRNetCls(nn.Module):
    """HRNet-W``width``-C feature extractor (stride 32, 2048 channels), CIM's way.

    ``freeze_at`` (CIM's ``HRNET.FREEZE_AT``, 2 by default): 1 freezes the stem and layer1, 2
    also transition1 and stage2; frozen parts have ``requires_grad=False`` and run under
    ``no_grad``. Every BatchNorm stays in eval mode (ImageNet statistics) even in training, as a
    batch of one image cannot estimate them; their affine parameters still train where unfrozen.
    """

    stride = STRIDE
    channels = CHANNELS

    def __init__(self, width: int = 48, freeze_at: int = 2) -> None:
        super().__init__()
        if not 0 <= freeze_at <= 2:
            raise ValueError(f"freeze_at must be 0, 1 or 2, got {freeze_at}")
        hrnet = _timm_hrnet()
        # num_classes=0: the 1000-way classifier is not built (CIM never uses it).
        self.net = hrnet.HighResolutionNet(hrnet_cls_config(width), num_classes=0)
        self.width, self.freeze_at = width, freeze_at
        for part in _FROZEN_PARTS[:freeze_at]:
            for name in part:
                getattr(self.net, name).requires_grad_(False)

    def train(self, mode: bool = True) -> HRNetCls:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, 2048, ceil(H/32), ceil(W/32))."""
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % STRIDE, 0, -h % STRIDE))
        net, grad = self.net, torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and self.freeze_at < 1):
            x = net.act1(net.bn1(net.conv1(x)))
            x = net.layer1(net.act2(net.bn2(net.conv2(x))))
        with torch.set_grad_enabled(grad and self.freeze_at < 2):
            branches = net.stage2([t(x) for t in net.transition1])
        for transition, stage in ((net.transition2, net.stage3), (net.transition3, net.stage4)):
            # A new (lower-resolution) branch starts from the last one; old ones pass through.
            branches = stage(
                [
                    branches[i] if isinstance(t, nn.Identity) else t(branches[-1])
                    for i, t in enumerate(transition)
                ]
            )
        y = net.incre_modules[0](branches[0])
        for incre, down, branch in zip(
            net.incre_modules[1:], net.downsamp_modules, branches[1:], strict=True
        ):
            y = incre(branch) + down(y)
        return net.final_layer(y)


def _counted(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # BatchNorm's step counter is absent from older checkpoints and unused in eval mode.
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def load_hrnet_imagenet(
    backbone: HRNetCls, source: str | Path | Mapping[str, torch.Tensor]
) -> list[str]:
    """Copy official HRNet-Image-Classification weights into ``backbone``; returns dropped keys.

    ``source``: ``hrnetv2_w48_imagenet_pretrained.pth`` (read with the weights-only loader) or
    its state dict. Strict for the backbone: every tensor must be present with its shape; the
    only keys allowed beyond are the ``classifier.*`` ones, which are dropped.
    """
    path = None if isinstance(source, Mapping) else Path(source)
    if path is None:
        state = dict(source)
    else:
        from rem_models.checkpoints import load_state_dict_file

        state = load_state_dict_file(path, keys=("state_dict", "model"))
    given, ours = _counted(state), _counted(backbone.net.state_dict())
    dropped = sorted(k for k in given if k.startswith("classifier."))
    unexpected = sorted(set(given) - set(ours) - set(dropped))
    missing = sorted(set(ours) - set(given))
    if missing or unexpected:
        raise RemError(
            f"not an HRNet-W{backbone.width}-C ImageNet checkpoint: {len(missing)} backbone "
            f"tensors missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}",
            path=path,
        )
    for key, tensor in ours.items():
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise RemError(
                f"shape {tuple(given[key].shape)} != the model's {tuple(tensor.shape)} "
                f"(a different HRNet width than W{backbone.width}?)",
                path=path,
                where=key,
            )
    with torch.no_grad():
        for key, tensor in ours.items():
            tensor.copy_(given[key])
    return dropped
