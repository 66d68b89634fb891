"""Training initialisation as LAVT does it: ImageNet Swin for the backbone, pretrained BERT.

LAVT starts from ``swin_base_patch4_window12_384_22k.pth`` (a classification Swin, ``{"model":
state}``) loaded non-strictly into its backbone, so the Swin blocks and patch merging get
ImageNet weights while the PWAMs, gates, stage norms and the decoder keep their fresh
initialisation; BERT comes from ``bert-base-uncased``. Both loaders report what they filled and
what they left, and refuse a file that fills no Swin block at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rem_core.errors import RemError
from rem_models.lavt.model import LAVT

_SWIN_RULES = (
    (re.compile(r"patch_embed\.(proj|norm)\.(weight|bias)"), r"backbone.patch_embed.\1.\2"),
    (
        re.compile(
            r"layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
            r"\.(weight|bias)"
        ),
        r"backbone.stages.\1.blocks.\2.\3.\4",
    ),
    (
        re.compile(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table"),
        r"backbone.stages.\1.blocks.\2.attn.relative_position_bias_table",
    ),
    (
        re.compile(r"layers\.(\d+)\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)"),
        r"backbone.stages.\1.downsample.\2",
    ),
)
# Classification-only or derived tensors: the head, the final norm, index and shift-mask buffers.
_SWIN_IGNORED = re.compile(
    r"(head\..+|norm\.(weight|bias)|.+\.relative_position_index|.+\.attn_mask)"
)


@dataclass(frozen=True)
class InitReport:
    """What an initialisation filled (``loaded``) and what kept its fresh values (``kept``)."""

    loaded: list[str]
    kept: list[str]
    ignored: list[str]


def swin_backbone_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Classification-Swin keys -> ``backbone.*`` keys; returns (mapped, ignored keys)."""
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, tensor in state.items():
        for pattern, target in _SWIN_RULES:
            m = pattern.fullmatch(key)
            if m:
                mapped[m.expand(target)] = tensor
                break
        else:
            if not _SWIN_IGNORED.fullmatch(key):
                raise RemError(f"{key} is not a Swin Transformer weight")
            ignored.append(key)
    return mapped, ignored


def load_swin_init(model: LAVT, source: str | Path | Mapping[str, Tensor]) -> InitReport:
    """Load ImageNet Swin weights (a ``.pth`` file or a state dict) into ``model.backbone``.

    Shapes must match the model (same width, depths and window: use window 12 for the 384 px
    22K weights); a window mismatch is reported with the table sizes rather than resized.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        from rem_models.checkpoints import load_state_dict_file

        state = load_state_dict_file(source, keys=("model", "state_dict"))
    mapped, ignored = swin_backbone_state(state)
    ours = model.state_dict()
    for key, tensor in mapped.items():
        if key not in ours:
            raise RemError(f"{key}: the model has no such parameter (different depths?)")
        if tuple(tensor.shape) != tuple(ours[key].shape):
            raise RemError(
                f"{key}: checkpoint shape {tuple(tensor.shape)} != model {tuple(ours[key].shape)}"
                " (a different Swin width or window size)"
            )
    if not any(".blocks." in k for k in mapped):
        raise RemError("no Swin block weights found: not a Swin checkpoint")
    with torch.no_grad():
        for key, tensor in mapped.items():
            ours[key].copy_(tensor)
    kept = sorted(k for k in ours if k.startswith("backbone.") and k not in mapped)
    return InitReport(sorted(mapped), kept, sorted(ignored))


def load_bert_init(model: LAVT, name_or_path: str | Path) -> InitReport:
    """Load pretrained BERT weights (a Hugging Face name or folder) into the text encoder."""
    from transformers import BertModel

    try:
        pretrained = BertModel.from_pretrained(str(name_or_path), add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise RemError(f"cannot load BERT {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    state = pretrained.state_dict()
    bert = model.text_encoder.bert
    ours = bert.state_dict()
    if set(state) != set(ours):
        raise RemError(f"BERT {name_or_path!r} does not have the text encoder's layout")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(ours[key].shape):
            raise RemError(
                f"BERT {name_or_path!r}: {key} is {tuple(tensor.shape)}, the config wants "
                f"{tuple(ours[key].shape)} (set model.text.* to its sizes)"
            )
    bert.load_state_dict(state, strict=True)
    return InitReport(sorted(f"text_encoder.bert.{k}" for k in state), [], [])
