"""Checkpoint filters: detectron2 ViTDet and MAE ViT weights -> rem ViTDet state dicts.

Every source key is mapped by an explicit rule; a key no rule knows, a rem key left without
a value, or a shape that does not fit raises :class:`RemError` naming the keys, so a silently
half-loaded model is impossible. detectron2 files are read with the restricted unpickler of
:mod:`rem_models.checkpoints` (no code can run).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from rem_core.errors import RemError
from rem_models.vitdet.config import VitDetConfig

# Parameters of each pyramid level's resampling layers in detectron2's ``simfp_<n>``
# Sequential, before its 1x1 and 3x3 convs (MaxPool and Identity hold none but count).
_RESAMPLE_LAYERS = {4.0: 4, 2.0: 1, 1.0: 0, 0.5: 1}

# MAE encoder entries that ViTDet does not use: the cls token, the final norm, the
# classifier and the pretraining decoder.
_MAE_UNUSED = re.compile(r"^(cls_token|mask_token|norm\.|fc_norm\.|head\.|decoder_)")

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]


def _d2_rules(config: VitDetConfig) -> list[Rule]:
    stride = config.vit.patch_size
    levels = {}
    for scale in config.pyramid.scale_factors:
        levels[str(int(math.log2(int(stride / scale))))] = _RESAMPLE_LAYERS.get(scale, 0)

    def simfp(m: re.Match[str]) -> str | None:
        level, index, norm, leaf = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if level not in levels:
            return None
        n = levels[level]
        base = f"backbone.levels.p{level}"
        if index < n:
            return None if norm else f"{base}.resample.{index}.{leaf}"
        part = {n: "lateral", n + 1: "output"}.get(index)
        if part is None:
            return None
        return f"{base}.{part}.{'norm' if norm else 'conv'}.{leaf}"

    def shifted(template: str) -> Callable[[re.Match[str]], str]:
        # detectron2 numbers head layers from 1 (conv1, fc1, mask_fcn1); rem from 0.
        return lambda m: template.format(int(m.group(1)) - 1, *m.groups()[1:])

    vit = r"^backbone\.net\."
    return [
        (
            re.compile(vit + r"patch_embed\.proj\.(weight|bias)$"),
            lambda m: f"backbone.vit.patch_embed.{m.group(1)}",
        ),
        (re.compile(vit + r"pos_embed$"), lambda m: "backbone.vit.pos_embed"),
        (
            re.compile(
                vit + r"blocks\.(\d+)\.((?:norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|"
                r"mlp\.fc2)\.(?:weight|bias)|attn\.rel_pos_[hw])$"
            ),
            lambda m: f"backbone.vit.blocks.{m.group(1)}.{m.group(2)}",
        ),
        (re.compile(r"^backbone\.simfp_(\d+)\.(\d+)\.(norm\.)?(weight|bias)$"), simfp),
        (
            re.compile(r"^proposal_generator\.rpn_head\.conv\.conv(\d+)\.(weight|bias)$"),
            lambda m: f"rpn.head.convs.{m.group(1)}.{m.group(2)}",
        ),
        # A one-conv RPN head is stored without the Sequential's "conv0".
        (
            re.compile(r"^proposal_generator\.rpn_head\.conv\.(weight|bias)$"),
            lambda m: f"rpn.head.convs.0.{m.group(1)}",
        ),
        (
            re.compile(r"^proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)$"),
            lambda m: f"rpn.head.objectness.{m.group(1)}",
        ),
        (
            re.compile(r"^proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)$"),
            lambda m: f"rpn.head.anchor_deltas.{m.group(1)}",
        ),
        (
            re.compile(r"^roi_heads\.box_head\.conv(\d+)\.(weight|bias)$"),
            shifted("roi_heads.box_head.convs.{}.conv.{}"),
        ),
        (
            re.compile(r"^roi_heads\.box_head\.conv(\d+)\.norm\.(weight|bias)$"),
            shifted("roi_heads.box_head.convs.{}.norm.{}"),
        ),
        (
            re.compile(r"^roi_heads\.box_head\.fc(\d+)\.(weight|bias)$"),
            shifted("roi_heads.box_head.fcs.{}.{}"),
        ),
        (
            re.compile(r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)$"),
            lambda m: f"roi_heads.box_predictor.{m.group(1)}.{m.group(2)}",
        ),
        (
            re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
            shifted("roi_heads.mask_head.convs.{}.conv.{}"),
        ),
        (
            re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.norm\.(weight|bias)$"),
            shifted("roi_heads.mask_head.convs.{}.norm.{}"),
        ),
        (
            re.compile(r"^roi_heads\.mask_head\.(deconv|predictor)\.(weight|bias)$"),
            lambda m: f"roi_heads.mask_head.{m.group(1)}.{m.group(2)}",
        ),
    ]


def detectron2_key_map(keys: list[str], config: VitDetConfig) -> dict[str, str]:
    """``{detectron2 key: rem key}`` for ``keys``; RemError naming any key no rule maps."""
    rules = _d2_rules(config)
    mapping: dict[str, str] = {}
    unknown = []
    for key in keys:
        for pattern, target in rules:
            m = pattern.match(key)
            if m:
                new = target(m)
                if new is not None:
                    mapping[key] = new
                    break
        else:
            unknown.append(key)
    if unknown:
        raise RemError(
            f"{len(unknown)} detectron2 key(s) have no counterpart in this ViTDet "
            f"config: {_preview(unknown)}"
        )
    return mapping


def _preview(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def expected_shapes(config: VitDetConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every entry of the rem state dict for ``config`` (built on the meta device)."""
    from rem_models.vitdet.build import build_vitdet

    with torch.device("meta"):
        model: nn.Module = build_vitdet(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_against(
    state: dict[str, Tensor],
    expected: dict[str, tuple[int, ...]],
    origin: Mapping[str, str],
    *,
    allowed_missing: Callable[[str], bool] = lambda key: False,
) -> list[str]:
    """RemError for unexpected keys or shape mismatches; returns the missing rem keys,
    raising if any is not ``allowed_missing``."""
    unexpected = [origin.get(k, k) for k in state if k not in expected]
    if unexpected:
        raise RemError(f"weights for parameters this model lacks: {_preview(unexpected)}")
    wrong = [
        f"{origin.get(k, k)} {tuple(v.shape)} vs {expected[k]}"
        for k, v in state.items()
        if tuple(v.shape) != expected[k]
    ]
    if wrong:
        raise RemError(f"shape mismatch (file vs model): {_preview(wrong, 4)}")
    missing = [k for k in expected if k not in state]
    required = [k for k in missing if not allowed_missing(k)]
    if required:
        raise RemError(f"weights missing for {len(required)} parameter(s): {_preview(required)}")
    return missing


def convert_detectron2_state_dict(
    state: Mapping[str, Tensor], config: VitDetConfig
) -> dict[str, Tensor]:
    """A detectron2 ViTDet state dict (``backbone.net.*``, ``roi_heads.*`` ...) as a complete
    rem state dict for ``config``; every key mapped, none missing, shapes checked."""
    mapping = detectron2_key_map(list(state), config)
    targets: dict[str, str] = {}
    for source, target in mapping.items():
        if target in targets:
            raise RemError(f"detectron2 keys {targets[target]} and {source} both map to {target}")
        targets[target] = source
    converted = {mapping[k]: v for k, v in state.items()}
    _check_against(converted, expected_shapes(config), targets)
    return converted


def convert_mae_state_dict(
    state: Mapping[str, Tensor], config: VitDetConfig
) -> tuple[dict[str, Tensor], list[str]]:
    """An MAE-pretrained ViT encoder as backbone weights: ``(state dict, ignored keys)``.

    The cls token, final norm, classifier and decoder are ignored (returned); relative
    positions, the pyramid and the heads are absent and keep their initialisation, as in
    detectron2's ViTDet training. A pos_embed of another grid or a patch size other than the
    model's (e.g. MAE ViT-H/14) raises RemError: use the p14-to-p16 converted file.
    """
    converted: dict[str, Tensor] = {}
    ignored: list[str] = []
    origin: dict[str, str] = {}
    for key, value in state.items():
        if _MAE_UNUSED.match(key):
            ignored.append(key)
            continue
        target = "backbone.vit." + key.replace("patch_embed.proj.", "patch_embed.")
        converted[target] = value
        origin[target] = key
    _check_against(
        converted,
        expected_shapes(config),
        origin,
        allowed_missing=lambda k: not k.startswith("backbone.vit.") or ".rel_pos_" in k,
    )
    return converted, ignored


CheckpointKind = Literal["detectron2", "mae", "rem"]


@dataclass
class ConvertedWeights:
    """A state dict ready for ``load_state_dict``; ``complete`` when every parameter is set."""

    state_dict: dict[str, Tensor]
    kind: CheckpointKind
    ignored: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.kind != "mae"


def detect_kind(state: Mapping[str, Tensor]) -> CheckpointKind:
    """Which layout a state dict uses, from its key names."""
    keys = list(state)
    if any(k.startswith(("backbone.net.", "proposal_generator.")) for k in keys):
        return "detectron2"
    if any(k.startswith(("backbone.vit.", "rpn.head.")) for k in keys):
        return "rem"
    if "patch_embed.proj.weight" in state and any(k.startswith("blocks.") for k in keys):
        return "mae"
    raise RemError(
        "not a ViTDet checkpoint: expected detectron2 (backbone.net.*), rem (backbone.vit.*) "
        f"or MAE (blocks.*, patch_embed.*) keys; found {_preview(sorted(keys), 5)}"
    )


def convert_state_dict(state: Mapping[str, Tensor], config: VitDetConfig) -> ConvertedWeights:
    """Any supported ViTDet weights (detectron2, MAE backbone, rem) as a rem state dict."""
    kind = detect_kind(state)
    if kind == "detectron2":
        return ConvertedWeights(convert_detectron2_state_dict(state, config), kind)
    if kind == "mae":
        converted, ignored = convert_mae_state_dict(state, config)
        return ConvertedWeights(converted, kind, ignored)
    converted = dict(state)
    _check_against(converted, expected_shapes(config), {})
    return ConvertedWeights(converted, kind)


def convert_checkpoint(state: Mapping[str, Tensor], config: VitDetConfig) -> dict[str, Tensor]:
    """The registry's converter hook (``rem convert-checkpoint``): the rem state dict of a
    released file. Complete for detectron2 / rem files; for MAE backbone files only the ViT
    entries, which initialise training but do not make a full model."""
    return convert_state_dict(state, config).state_dict


def load_checkpoint_file(
    path: str | Path, config: VitDetConfig, file_format: str | None = None
) -> ConvertedWeights:
    """Read a weights file safely (:mod:`rem_models.checkpoints`) and convert it.

    detectron2 ``.pkl`` files go through the restricted unpickler, ``.pth`` through
    ``torch.load(weights_only=True)``; the file name is added to any conversion error.
    """
    from rem_models.checkpoints import load_state_dict_file

    state = load_state_dict_file(path, file_format)  # type: ignore[arg-type]
    try:
        return convert_state_dict(state, config)
    except RemError as exc:
        if exc.path is not None:
            raise
        raise RemError(exc.detail, path=path, where=exc.where) from None


def load_into(model: nn.Module, weights: ConvertedWeights) -> None:
    """Load converted weights: strictly when complete, else exactly the converted keys."""
    result = model.load_state_dict(weights.state_dict, strict=weights.complete)
    if result.unexpected_keys:
        raise RemError(f"unexpected weights: {_preview(list(result.unexpected_keys))}")
