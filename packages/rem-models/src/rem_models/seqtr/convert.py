"""SeqTR checkpoints: pick the EMA weights, read num_ray / vocabulary size, check every key.

A SeqTR ``.pth`` holds ``{epoch, state_dict, optimizer, scheduler, [ema_state_dict], ...}``;
the EMA copy is what SeqTR evaluates, so it is preferred. Parameter names already match the rem
modules (see ``darknet.py``, ``transformer.py``); conversion strips a ``module.`` prefix and
checks the key set and every shape, so a wrong config fails loudly instead of half-loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rem_core.errors import RemError
from rem_models.checkpoints import load_state_dict_file
from rem_models.seqtr.config import SeqTRConfig

if TYPE_CHECKING:
    from rem_models.weights import FileFormat

POSITIONS_KEY = "head.transformer.seq_positional_encoding.embedding.weight"
EMBEDDING_KEY = "lan_enc.embedding.weight"
PROMPT_KEY = "head.transformer.task_prompt.weight"
EMA_KEYS = ("ema_state_dict", "state_dict", "model")


def read_seqtr_file(
    path: str | Path, file_format: FileFormat | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a SeqTR checkpoint file, the EMA copy when there is one."""
    return load_state_dict_file(path, file_format, keys=EMA_KEYS)


def infer_config(state: dict[str, torch.Tensor], base: SeqTRConfig) -> SeqTRConfig:
    """``base`` with task, num_ray and vocabulary size read from the tensors.

    The query-position table has 5 rows for boxes and 2*num_ray + 1 for contours.
    """
    if POSITIONS_KEY not in state or EMBEDDING_KEY not in state:
        raise RemError(f"not a SeqTR state dict: {POSITIONS_KEY!r} or {EMBEDDING_KEY!r} missing")
    rows = state[POSITIONS_KEY].shape[0]
    vocab, dim = state[EMBEDDING_KEY].shape
    language = base.language.model_copy(update={"vocab_size": vocab, "embed_dim": dim})
    partial = PROMPT_KEY in state  # Partial-RES adds a learned start token
    if rows == 5 and base.task == "box":
        return base.model_copy(update={"language": language, "partial_res": partial})
    if rows < 5 or rows % 2 == 0:
        raise RemError(f"{POSITIONS_KEY} has {rows} rows: not 5 (box) nor 2*num_ray+1 (mask)")
    return base.model_copy(
        update={
            "task": "mask",
            "num_ray": (rows - 1) // 2,
            "language": language,
            "partial_res": partial,
        }
    )


def convert_seqtr_state_dict(
    state: dict[str, torch.Tensor], config: SeqTRConfig
) -> dict[str, torch.Tensor]:
    """A SeqTR state dict -> the rem model's, for the model built from ``config``.

    Raises :class:`RemError` naming num_ray / vocabulary mismatches (with the ``--set`` that
    fixes them), missing or unexpected keys, and shape mismatches.
    """
    from rem_models.seqtr.build import build_seqtr

    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    found = infer_config(state, config)
    if found.task != config.task or (found.num_ray != config.num_ray and config.task == "mask"):
        what = "boxes" if found.task == "box" else f"contours of num_ray {found.num_ray}"
        raise RemError(
            f"the checkpoint predicts {what} (rows of {POSITIONS_KEY}); pick the matching model "
            f"or --set model.num_ray={found.num_ray}"
        )
    if found.partial_res != config.partial_res:
        kind = "a Partial-RES" if found.partial_res else "a plain SeqTR"
        raise RemError(
            f"the checkpoint holds {kind} head; --set model.partial_res={found.partial_res}"
        )
    if found.language.vocab_size != config.language.vocab_size:
        raise RemError(
            f"the checkpoint's vocabulary has {found.language.vocab_size} words; "
            f"--set model.language.vocab_size={found.language.vocab_size}"
        )
    with torch.device("meta"):
        expected = build_seqtr(config).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise RemError(
            f"keys do not match SeqTR: missing {missing[:5]}{'...' if len(missing) > 5 else ''}"
            f", unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise RemError(f"shape {tuple(state[key].shape)} != {tuple(tensor.shape)}", where=key)
    return {k: state[k] for k in expected}


convert_seqtr_state_dict.read_file = read_seqtr_file  # type: ignore[attr-defined]


def parameter_breakdown(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts per component (and trainable DarkNet, word table), for the spec check."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    lan = model.lan_enc
    out = {
        "vis_enc": count(model.vis_enc),
        "vis_enc_trainable": sum(p.numel() for p in model.vis_enc.parameters() if p.requires_grad),
        "lan_enc_gru": count(lan.lstm),
        "word_embedding": lan.embedding.weight.numel(),
        "fusion": count(model.fusion),
        "head": count(model.head),
    }
    out["total_without_embedding"] = (
        out["vis_enc"] + out["lan_enc_gru"] + out["fusion"] + out["head"]
    )
    out["total"] = out["total_without_embedding"] + out["word_embedding"]
    return out


def convert_seqtr_file(
    source: str | Path, dest: str | Path, base: SeqTRConfig | None = None, arch: str | None = None
) -> tuple[Path, dict[str, int]]:
    """Convert a SeqTR ``.pth`` to a rem safetensors checkpoint; returns (path, param counts).

    The architecture (task, num_ray, vocabulary) is read from the file; ``arch`` defaults to
    ``seqtr_rec`` or ``seqtr_res``. Loading is strict.
    """
    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.registry import get_model, get_model_config

    state = read_seqtr_file(source)
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    config = infer_config(state, base or get_model_config("seqtr_rec"))
    if arch is None:
        arch = "seqtr_rec" if config.task == "box" else "seqtr_res"
        arch = "pres_res" if config.partial_res else arch
    converted = convert_seqtr_state_dict(state, config)
    model = get_model(arch, config)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise RemError(f"weights do not fit {arch!r}: {exc}", path=source) from None
    path = save_checkpoint_safetensors(
        dest, model.state_dict(), config, arch=arch, metadata={"rem.source": Path(source).name}
    )
    return path, parameter_breakdown(model)
