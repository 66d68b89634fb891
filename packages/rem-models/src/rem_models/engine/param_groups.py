"""Optimiser parameter groups: weight-decay exemptions and layer-wise lr decay.

The rules are detectron2's ``get_default_optimizer_params``: each parameter starts at the base
lr and weight decay; parameters owned by a torch normalisation module get ``weight_decay_norm``
(unless it is None); the lr is multiplied by the layer-decay factor of the full parameter name;
finally a per-name override (matched on the parameter's own name, e.g. ``pos_embed``) sets the
weight decay. Parameters sharing the same lr scale and weight decay end up in one group.

Layer-wise decay scales the lr of a parameter in layer ``id`` (0 = embeddings, ``i + 1`` =
block ``i``, ``L + 1`` = everything after the backbone) by ``rate ** (L + 1 - id)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rem_core.errors import RemError
from rem_models.engine.config import TrainConfig

# Only torch's own normalisation classes count, as in detectron2: its channels-first LayerNorm
# (used by ViTDet's feature pyramid and heads) is a plain Module and keeps its weight decay.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def vit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter named like detectron2's ViTDet (``backbone.net.blocks.3.x``).

    Under ``backbone``: names containing ``.pos_embed`` or ``.patch_embed`` are layer 0, names
    containing ``.blocks.<i>.`` (but not ``.residual.``) are layer ``i + 1``. Everything else,
    including the feature pyramid and the heads, is layer ``num_layers + 1``.
    """
    if name.startswith("backbone"):
        if ".pos_embed" in name or ".patch_embed" in name:
            return 0
        at = name.find(".blocks.")
        if at >= 0 and ".residual." not in name:
            return int(name[at:].split(".")[2]) + 1
    return num_layers + 1


def layer_decay_function(model: nn.Module, cfg: TrainConfig) -> Callable[[str], float] | None:
    """``name -> lr scale`` for ``cfg.layer_decay``, or None when layer decay is off.

    The layer of a parameter comes from the model's ``lr_layer_id(name)`` method if it has one,
    else from :func:`vit_layer_id`; the layer count from ``model.lr_num_layers`` if present, else
    ``cfg.layer_decay_num_layers``.
    """
    rate = cfg.layer_decay
    if rate is None:
        return None
    num_layers = getattr(model, "lr_num_layers", None) or cfg.layer_decay_num_layers
    if not num_layers:
        raise RemError(
            f"layer_decay needs the number of layers: the model {type(model).__name__} has no "
            "lr_num_layers attribute; set layer_decay_num_layers",
            where="--set",
        )
    layer_id = getattr(model, "lr_layer_id", None)
    if layer_id is None:

        def layer_id(name: str) -> int:
            return vit_layer_id(name, num_layers)

    def scale(name: str) -> float:
        lid = layer_id(name)
        if not 0 <= lid <= num_layers + 1:
            raise ValueError(f"layer id {lid} of {name!r} is outside 0..{num_layers + 1}")
        return rate ** (num_layers + 1 - lid)

    return scale


def build_param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Parameter groups ``{"params", "names", "lr", "lr_scale", "weight_decay"}`` for ``model``.

    ``lr`` is ``cfg.lr * lr_scale``. Frozen parameters (``requires_grad=False``) are left out;
    a parameter shared by several modules is counted once, under its first owner.
    """
    decay_of = layer_decay_function(model, cfg)
    seen: set[int] = set()
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            decay = cfg.weight_decay
            if isinstance(module, NORM_TYPES) and cfg.weight_decay_norm is not None:
                decay = cfg.weight_decay_norm
            scale = decay_of(full) if decay_of is not None else 1.0
            decay = cfg.weight_decay_overrides.get(param_name, decay)
            group = groups.setdefault(
                (scale, decay),
                {
                    "params": [],
                    "names": [],
                    "lr": cfg.lr * scale,
                    "lr_scale": scale,
                    "weight_decay": decay,
                },
            )
            group["params"].append(param)
            group["names"].append(full)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum) over :func:`build_param_groups`."""
    groups = build_param_groups(model, cfg)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
