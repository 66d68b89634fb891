"""LAVT checkpoints -> rem state dicts, read without unpickling arbitrary objects.

LAVT's ``train.py`` saves ``{"model", "bert_model" (lavt layout only), "optimizer", "epoch",
"args", "lr_scheduler"}`` where ``args`` is a pickled ``argparse.Namespace``. The file is read
with ``torch.load(weights_only=True)`` allowing that one class, so nothing else in it can run.
In the ``lavt_one`` layout BERT sits in ``model`` under ``text_encoder.``.

Every LAVT key is mapped by an explicit rule; unknown, duplicate or missing keys and shape
mismatches raise :class:`RemError` naming them. The window size is read from the relative
position bias tables ((2w - 1)^2 rows) and must match the config.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor

from rem_core.errors import RemError
from rem_models.checkpoints import load_state_dict_file, load_torch_file, unwrap_state_dict
from rem_models.lavt.config import LavtConfig, SwinConfig, TextConfig
from rem_models.lavt.swin import relative_position_index
from rem_models.weights import FileFormat

BERT_PREFIX = "bert_model."  # how the lavt layout's separate BERT is flattened beside "model"
ONE_PREFIX = "text_encoder."  # where lavt_one keeps BERT inside "model"

_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]
_DECODER = {"4": "fuse4", "3": "fuse3", "2": "fuse2"}
_FUSION = {
    "vis_project.0": "visual_proj",
    "image_lang_att.f_query.0": "attention.query",
    "image_lang_att.f_key.0": "attention.key",
    "image_lang_att.f_value.0": "attention.value",
    "image_lang_att.W.0": "attention.out",
    "project_mm.0": "mix_proj",
}
_P = r"(weight|bias)"

RULES: tuple[_Rule, ...] = (
    (re.compile(rf"backbone\.patch_embed\.(proj|norm)\.{_P}"), r"backbone.patch_embed.\1.\2"),
    (
        re.compile(
            r"backbone\.layers\.(\d+)\.blocks\.(\d+)\."
            rf"(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.{_P}"
        ),
        r"backbone.stages.\1.blocks.\2.\3.\4",
    ),
    (
        re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table"),
        r"backbone.stages.\1.blocks.\2.attn.relative_position_bias_table",
    ),
    (
        re.compile(
            r"backbone\.layers\.(\d+)\.fusion\.("
            + "|".join(re.escape(k) for k in _FUSION)
            + rf")\.{_P}"
        ),
        lambda m: f"backbone.stages.{m[1]}.fusion.{_FUSION[m[2]]}.{m[3]}",
    ),
    (
        re.compile(r"backbone\.layers\.(\d+)\.res_gate\.([02])\.weight"),
        lambda m: f"backbone.stages.{m[1]}.gate.fc{1 if m[2] == '0' else 2}.weight",
    ),
    (
        re.compile(rf"backbone\.layers\.(\d+)\.downsample\.(norm\.{_P}|reduction\.weight)"),
        r"backbone.stages.\1.downsample.\2",
    ),
    (re.compile(rf"backbone\.norm(\d+)\.{_P}"), r"backbone.out_norms.\1.\2"),
    (
        re.compile(r"classifier\.(conv|bn)([12])_([234])\.(.+)"),
        lambda m: f"decoder.{_DECODER[m[3]]}.{m[1]}{m[2]}.{m[4]}",
    ),
    (re.compile(rf"classifier\.conv1_1\.{_P}"), r"decoder.predictor.\1"),
    (
        re.compile(r"(?:bert_model|text_encoder)\.(embeddings|encoder)\.(.+)"),
        r"text_encoder.bert.\1.\2",
    ),
)

# LAVT keys that carry no weights of their own: checked, then dropped.
_INDEX_KEY = re.compile(r"backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index")
_POSITION_IDS = re.compile(r"(?:bert_model|text_encoder)\.embeddings\.position_ids")
# ``test.py`` without --ddp_trained_weights loads a pooler; LAVT never uses it.
_POOLER = re.compile(r"(?:bert_model|text_encoder)\.pooler\..+")
_FUSION_CONV = re.compile(r".*\.fusion\.(visual_proj|attention\.\w+|mix_proj)\.weight")


def rem_key(lavt_key: str) -> str | None:
    """The rem name of a LAVT key (flattened layout), or None when no rule matches."""
    for pattern, target in RULES:
        m = pattern.fullmatch(lavt_key)
        if m:
            return target(m) if callable(target) else m.expand(target)
    return None


def window_from_tables(state: Mapping[str, Tensor]) -> int:
    """The Swin window size of a state dict, from its (2w - 1)^2-row bias tables."""
    sizes = {
        t.shape[0] for k, t in state.items() if k.endswith("attn.relative_position_bias_table")
    }
    if not sizes:
        raise RemError("no relative_position_bias_table in the checkpoint: not a Swin/LAVT model")
    if len(sizes) > 1:
        raise RemError(f"bias tables of different sizes {sorted(sizes)}: mixed window sizes")
    rows = sizes.pop()
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        raise RemError(f"a bias table of {rows} rows is not (2w - 1)^2 for any window w")
    return (side + 1) // 2


def _is_rem_layout(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(("backbone.stages.", "decoder.")) for k in state)


def convert_lavt_state_dict(
    state: Mapping[str, Tensor], config: LavtConfig, *, verbose: bool = True
) -> dict[str, Tensor]:
    """Map a flattened LAVT state dict (either layout, see :func:`read_lavt_file`) onto rem keys.

    The registered ``converter`` of ``lavt`` / ``lavt_one`` / ``lavt_test``. Prints the
    parameter count when ``verbose``. A rem state dict is returned as is (after the checks).
    """
    window = window_from_tables(
        {k: v for k, v in state.items() if "relative_position_bias_table" in k}
    )
    if window != config.swin.window_size:
        raise RemError(
            f"the checkpoint's bias tables have {(2 * window - 1) ** 2} rows (window {window}) "
            f"but the config has window {config.swin.window_size}; pass "
            f"--set swin.window_size={window}"
        )
    if _is_rem_layout(state):
        out = dict(state)
    else:
        out = _map_keys(state, window)
    _check_bert_present(out)
    if verbose:
        _print_counts(out)
    return out


def _map_keys(state: Mapping[str, Tensor], window: int) -> dict[str, Tensor]:
    expected_index = relative_position_index(window)
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if _INDEX_KEY.fullmatch(key):
            if not torch.equal(tensor.to(torch.int64), expected_index):
                raise RemError(f"{key} differs from the index of a window-{window} table")
            continue
        if _POSITION_IDS.fullmatch(key):
            if not torch.equal(tensor.flatten().to(torch.int64), torch.arange(tensor.numel())):
                raise RemError(f"{key} is not 0, 1, 2, ...")
            continue
        if _POOLER.fullmatch(key):
            continue
        target = rem_key(key)
        if target is None:
            unknown.append(key)
            continue
        if target in out:
            raise RemError(f"two checkpoint keys map to {target} (BERT in both layouts?)")
        if _FUSION_CONV.fullmatch(target):
            if tensor.ndim != 3 or tensor.shape[-1] != 1:
                raise RemError(f"{key}: expected a 1x1 Conv1d weight, got {tuple(tensor.shape)}")
            tensor = tensor[..., 0]
        out[target] = tensor
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise RemError(f"{len(unknown)} checkpoint keys are not LAVT weights: {shown}")
    return out


def _check_bert_present(state: Mapping[str, Tensor]) -> None:
    if not any(k.startswith("text_encoder.bert.") for k in state):
        raise RemError(
            "no BERT weights: a lavt checkpoint keeps them under 'bert_model', a lavt_one "
            "checkpoint under 'model' as text_encoder.*"
        )


def parameter_breakdown(state: Mapping[str, Tensor]) -> dict[str, int]:
    """Parameter counts of the backbone (with PWAMs and gates), decoder and BERT.

    Buffers (BatchNorm statistics) are not parameters and are left out.
    """
    parts = {"backbone": 0, "decoder": 0, "text_encoder": 0}
    for key, tensor in state.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        parts[key.split(".", 1)[0]] = parts.get(key.split(".", 1)[0], 0) + tensor.numel()
    return parts


def _print_counts(state: Mapping[str, Tensor]) -> None:
    parts = parameter_breakdown(state)
    total = sum(parts.values())
    Console(stderr=True, highlight=False).print(
        f"LAVT parameters: {total:,} (backbone + PWAMs {parts['backbone']:,}, decoder "
        f"{parts['decoder']:,}, BERT {parts['text_encoder']:,})"
    )


@dataclass(frozen=True)
class LavtFile:
    """A LAVT checkpoint read safely: flattened tensors, its training args and its layout."""

    state_dict: dict[str, Tensor]
    args: dict[str, Any] = field(default_factory=dict)
    layout: str = "lavt"  # "lavt" (BERT in bert_model), "lavt_one" or "rem"


def read_lavt_file(path: str | Path, file_format: FileFormat | None = None) -> LavtFile:
    """Read a LAVT ``.pth`` (either layout) or any state-dict file, allowing only Namespace.

    The lavt layout's ``bert_model`` keys are prefixed with ``bert_model.`` beside the model's.
    """
    path = Path(path)
    if file_format not in (None, "torch") or path.suffix == ".safetensors":
        state = load_state_dict_file(path, file_format)
        return LavtFile(state, {}, "rem" if _is_rem_layout(state) else _layout(state))
    obj = load_torch_file(path, safe_globals=[argparse.Namespace])
    args: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("args"), argparse.Namespace):
        args = dict(vars(obj["args"]))
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        state = unwrap_state_dict(obj["model"], path, keys=())
        bert = obj.get("bert_model")
        if isinstance(bert, Mapping):
            for key, tensor in unwrap_state_dict(bert, path, keys=()).items():
                state[BERT_PREFIX + key] = tensor
    else:
        state = unwrap_state_dict(obj, path)
    return LavtFile(state, args, "rem" if _is_rem_layout(state) else _layout(state))


def _layout(state: Mapping[str, Tensor]) -> str:
    return "lavt_one" if any(k.startswith(ONE_PREFIX) for k in state) else "lavt"


def read_lavt_state_dict(
    path: str | Path, file_format: FileFormat | None = None
) -> dict[str, Tensor]:
    """The flattened tensors of :func:`read_lavt_file` (the engine's converter file reader)."""
    return read_lavt_file(path, file_format).state_dict


# ``rem convert-checkpoint`` reads files through the converter's own reader when it has one.
convert_lavt_state_dict.read_file = read_lavt_state_dict  # type: ignore[attr-defined]


def infer_config(lavt_file: LavtFile, tokenizer: str | None = None) -> LavtConfig:
    """The :class:`LavtConfig` a LAVT checkpoint was trained with, from its tensors and args.

    Widths, depths, heads (from the bias tables' columns), window and BERT sizes come from the
    tensors; PWAM heads from ``args.mha`` (the tensors cannot tell), BERT attention heads as
    ``hidden / 64`` (true of every released BERT).
    """
    state = lavt_file.state_dict
    if lavt_file.layout == "rem":
        raise RemError("a rem state dict carries no LAVT args; rebuild it from its rem checkpoint")
    embed = state["backbone.patch_embed.proj.weight"]
    stages = sorted({int(m[1]) for k in state if (m := re.match(r"backbone\.layers\.(\d+)\.", k))})
    depths, heads = [], []
    for i in stages:
        blocks = {
            int(m[1])
            for k in state
            if (m := re.match(rf"backbone\.layers\.{i}\.blocks\.(\d+)\.", k))
        }
        depths.append(len(blocks))
        heads.append(
            state[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]
        )
    mha = str(lavt_file.args.get("mha") or "")
    fusion_heads = [int(a) for a in mha.split("-")] if mha else [1] * len(stages)
    prefix = ONE_PREFIX if lavt_file.layout == "lavt_one" else BERT_PREFIX
    words = state[f"{prefix}embeddings.word_embeddings.weight"]
    layers = {
        int(m[1])
        for k in state
        if (m := re.match(rf"{re.escape(prefix)}encoder\.layer\.(\d+)\.", k))
    }
    text = TextConfig(
        vocab_size=words.shape[0],
        hidden_size=words.shape[1],
        num_layers=len(layers),
        num_heads=max(1, words.shape[1] // 64),
        intermediate_size=state[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state[f"{prefix}embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state[f"{prefix}embeddings.token_type_embeddings.weight"].shape[0],
        **({"tokenizer": tokenizer} if tokenizer else {}),
    )
    swin = SwinConfig(
        embed_dim=embed.shape[0],
        patch_size=embed.shape[-1],
        depths=depths,
        num_heads=heads,
        window_size=window_from_tables(state),
        fusion_heads=fusion_heads,
        fusion_dropout=float(lavt_file.args.get("fusion_drop", 0.0) or 0.0),
    )
    size = int(lavt_file.args.get("img_size", 480) or 480)
    hidden = state["classifier.conv1_4.weight"].shape[0]
    return LavtConfig(
        swin=swin,
        text=text,
        decoder_hidden=None if hidden == 4 * swin.embed_dim else hidden,
        image_size=size,
    )
