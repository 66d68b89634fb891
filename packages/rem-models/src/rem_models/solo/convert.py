"""Checkpoint filters: released SOLO / SOLOv2 / AggMask / AggMask* files -> rem state dicts.

The rem models keep the reference's module names (``backbone.`` torchvision ResNet names,
``neck.lateral_convs.i.conv``, ``bbox_head.*``, ``mask_feat_head.*``), so most keys map to
themselves. The explicit rules below cover what differs between files of the same architecture:

- ``module.`` prefixes (DataParallel) are stripped by the loader;
- modulated deformable convs saved by newer mmcv as ``conv_offset`` (3 k^2 channels) become
  ``conv_offset_mask``; mmdet < 1.0's block-level ``conv2_offset`` becomes ``conv2.conv_offset``;
- BatchNorm ``num_batches_tracked`` counters missing from old files are filled with 0 (they
  only matter for BN momentum None, unused here).

Any other unknown key, missing key or wrong shape raises :class:`RemError` naming it. A
torchvision ImageNet classifier file is also accepted: its backbone tensors are placed into a
freshly initialised model (seed 0), the reference's ``pretrained='torchvision://resnet50'``
start. Each conversion prints the parameter count per top-level module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from rich.console import Console
from torch import Tensor, nn

from rem_core.errors import RemError
from rem_models.solo.build import build_solo
from rem_models.solo.config import SoloFamilyConfig
from rem_models.solo.resnet import imagenet_backbone_state

_OLD_DCN_OFFSET = re.compile(r"^(backbone\.layer\d+\.\d+)\.conv2_offset\.(weight|bias)$")
_CLASSIFIER_KEYS = ("conv1.weight", "fc.weight")


def is_imagenet_classifier(state: Mapping[str, Tensor]) -> bool:
    """A torchvision ResNet classifier state dict (top-level ``conv1`` and ``fc``)."""
    return all(k in state for k in _CLASSIFIER_KEYS) and not any(
        k.startswith("backbone.") for k in state
    )


def _rename(key: str, value: Tensor, own: Mapping[str, Tensor]) -> str:
    old = _OLD_DCN_OFFSET.match(key)
    if old:
        return f"{old.group(1)}.conv2.conv_offset.{old.group(2)}"
    if ".conv_offset." in key:
        modulated = key.replace(".conv_offset.", ".conv_offset_mask.")
        if modulated in own and key not in own:
            return modulated
    return key


def convert_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, *, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Map an official state dict onto ``model``'s keys; every key accounted for, shapes checked."""
    own = model.state_dict()
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        name = _rename(key, value, own)
        if name not in own:
            unknown.append(key)
            continue
        if name in out:
            raise RemError(f"two tensors map to {name!r}", path=source, where=key)
        if tuple(value.shape) != tuple(own[name].shape):
            hint = ""
            if name.endswith("solo_cate.weight"):
                hint = f" (the file has {value.shape[0]} classes; set num_classes)"
            raise RemError(
                f"shape {tuple(value.shape)} does not fit {tuple(own[name].shape)}{hint}",
                path=source,
                where=key,
            )
        out[name] = value.to(own[name].dtype)
    if unknown:
        raise RemError(
            f"{len(unknown)} tensors have no place in the model, e.g. {unknown[:3]} (is it "
            "the checkpoint of another variant?)",
            path=source,
        )
    missing = []
    for key, value in own.items():
        if key in out:
            continue
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(value)
        else:
            missing.append(key)
    if missing:
        raise RemError(
            f"{len(missing)} model tensors are missing from the file, e.g. {missing[:3]}",
            path=source,
        )
    return out


def parameter_summary(model: nn.Module) -> str:
    """``name count`` per top-level module and the total, e.g. for the conversion log."""
    parts = [
        f"{name} {sum(p.numel() for p in child.parameters()):,}"
        for name, child in model.named_children()
    ]
    total = sum(p.numel() for p in model.parameters())
    return f"{total:,} parameters ({', '.join(parts)})"


def convert_checkpoint(
    state: dict[str, Tensor], config: SoloFamilyConfig, *, quiet: bool = False
) -> dict[str, Tensor]:
    """The registry converter: official (or ImageNet classifier) tensors -> rem state dict."""
    with torch.random.fork_rng():
        torch.manual_seed(0)  # fresh parts of an ImageNet start are reproducible
        model = build_solo(config)
    if is_imagenet_classifier(state):
        backbone = imagenet_backbone_state(state, model.backbone, source="ImageNet weights")
        full = model.state_dict()
        full.update({f"backbone.{k}": v for k, v in backbone.items()})
        converted = full
        what = "ImageNet backbone + fresh neck and heads"
    else:
        converted = convert_state_dict(state, model)
        what = "all tensors mapped"
    if not quiet:
        Console(stderr=True).print(f"{what}: {len(converted)} tensors, {parameter_summary(model)}")
    return converted


def load_imagenet_backbone(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Initialise ``model.backbone`` from a torchvision ImageNet classifier state dict."""
    backbone = imagenet_backbone_state(state, model.backbone, source=source)
    model.backbone.load_state_dict(backbone)
