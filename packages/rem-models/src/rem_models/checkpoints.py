"""Loading state dicts from released weights files without running code, and saving our own.

Released checkpoints come as detectron2 pickles, ``torch.save`` files (plain, mmcv's
``{meta, state_dict}``, or training snapshots ``{"model": ..., "optimizer": ...}``) and
safetensors. Every loader here refuses arbitrary objects: pickles go through
:mod:`rem_models.safe_pickle`, torch files through ``torch.load(weights_only=True)``. rem writes
safetensors with the model config as JSON metadata, so a checkpoint alone rebuilds its model.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel

from rem_core.atomic import atomic_write_bytes
from rem_core.errors import RemError
from rem_models.safe_pickle import load_pickle
from rem_models.weights import FileFormat, Weights, fetch_weights

if TYPE_CHECKING:
    from torch import nn

CONFIG_KEY = "rem.config"
ARCH_KEY = "rem.arch"

_SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".pkl": "detectron2-pkl",
    ".safetensors": "safetensors",
    ".pth": "torch",
    ".pt": "torch",
    ".bin": "torch",
    ".ckpt": "torch",
}


def guess_format(path: str | Path) -> FileFormat:
    """The file format of ``path`` from its suffix, else from its first bytes.

    A zip archive is a torch file; an 8-byte length followed by ``{`` is safetensors.
    """
    path = Path(path)
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise RemError(
        "cannot tell the weights format from the name or contents; "
        "pass file_format (detectron2-pkl, torch, safetensors or mmcv)",
        path=path,
    )


def _to_tensor(value: Any, key: str, path: Path) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise RemError(f"expected an array, got {type(value).__name__}", path=path, where=key)
    if value.dtype.hasobject:
        raise RemError("array of Python objects cannot become a tensor", path=path, where=key)
    if not value.dtype.isnative:  # torch only reads native byte order
        value = value.astype(value.dtype.newbyteorder("="))
    if not value.flags.writeable or not value.flags.c_contiguous:
        value = np.array(value, order="C")  # a writable, C-ordered copy
    try:
        return torch.from_numpy(value)
    except TypeError as exc:
        raise RemError(f"unsupported array: {exc}", path=path, where=key) from None


def unwrap_state_dict(
    obj: Any,
    path: str | Path | None = None,
    keys: Sequence[str] = ("state_dict", "model"),
) -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint and return it as ``{name: tensor}``.

    ``obj`` may already be a state dict or wrap one under the first of ``keys`` present
    (mmcv ``{meta, state_dict}``, detectron2 ``{"model": ...}``; pass e.g.
    ``("ema_state_dict", "state_dict")`` to prefer EMA weights). numpy arrays become tensors.
    A ``module.`` prefix on every key (saved from DataParallel) is removed.
    """
    shown = Path(path) if path is not None else Path("<checkpoint>")
    if not isinstance(obj, Mapping):
        raise RemError(f"expected a dict of weights, got {type(obj).__name__}", path=shown)
    inner: Any = obj
    for key in keys:
        if isinstance(obj.get(key), Mapping):
            inner = obj[key]
            break
    else:
        if not all(isinstance(v, torch.Tensor | np.ndarray | np.generic) for v in obj.values()):
            raise RemError(
                f"no state dict found: expected one of the keys {list(keys)} "
                f"or a flat dict of tensors; top-level keys: {sorted(map(str, obj))[:20]}",
                path=shown,
            )
    state = {str(k): _to_tensor(v, str(k), shown) for k, v in inner.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


def load_torch_file(path: str | Path, safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load`` restricted to tensors and plain containers, on the CPU.

    ``safe_globals`` allow-lists further classes for files known to hold them (LAVT snapshots
    pickle an ``argparse.Namespace``). Anything else raises :class:`RemError` naming the global.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = _GLOBAL_IN_MESSAGE.search(text)
        if found:
            raise RemError(
                f"refusing to load global {found.group(1)}: weights files may only hold tensors "
                "and plain containers (allow-list a trusted class with safe_globals)",
                path=path,
            ) from None
        detail = _UNPICKLER_DETAIL.search(text)
        reason = detail.group(1).strip() if detail else text.strip().splitlines()[0]
        raise RemError(
            f"not a readable torch file (weights-only unpickler: {reason})", path=path
        ) from None
    except (RuntimeError, EOFError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RemError(f"not a readable torch file: {first_line}", path=path) from None


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file, on the CPU."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise RemError("no such file", path=path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as exc:
        raise RemError(f"not a readable safetensors file: {exc}", path=path) from None
    return tensors, metadata


def load_state_dict_file(
    path: str | Path,
    file_format: FileFormat | None = None,
    *,
    keys: Sequence[str] = ("state_dict", "model"),
    safe_globals: Sequence[Any] = (),
) -> dict[str, torch.Tensor]:
    """Load the ``{name: tensor}`` state dict of any supported weights file, on the CPU.

    ``file_format`` defaults to :func:`guess_format`. ``keys`` and ``safe_globals`` are passed to
    :func:`unwrap_state_dict` and :func:`load_torch_file`. Names are returned as stored; mapping
    a foreign layout onto a rem model is the job of the family's checkpoint filter.
    """
    path = Path(path)
    fmt = file_format or guess_format(path)
    if fmt == "safetensors":
        return load_safetensors(path)[0]
    if fmt == "detectron2-pkl":
        obj = load_pickle(path)
        # detectron2 zoo files wrap "model"; Caffe2-era Detectron files wrap "blobs".
        return unwrap_state_dict(obj, path, keys=("model", "blobs"))
    if fmt in ("torch", "mmcv"):
        return unwrap_state_dict(load_torch_file(path, safe_globals), path, keys=keys)
    raise RemError(f"unknown weights format {fmt!r}", path=path)


def load_weights(weights: Weights, cache_dir: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Fetch ``weights`` (downloading and verifying once) and load its state dict."""
    return load_state_dict_file(fetch_weights(weights, cache_dir), weights.file_format)


def _config_json(config: BaseModel | Mapping[str, Any]) -> str:
    if isinstance(config, BaseModel):
        return config.model_dump_json()
    return json.dumps(dict(config), sort_keys=True)


def save_checkpoint_safetensors(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: BaseModel | Mapping[str, Any],
    *,
    arch: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically, with ``config`` as JSON.

    ``arch`` (a registered model name) is stored too, so :func:`build_from_checkpoint` can rebuild
    the model. Tensors are moved to the CPU; tensors sharing memory (tied weights) are copied,
    since safetensors stores each tensor once.
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().to("cpu").contiguous()
        storage = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if storage in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(storage)
        tensors[name] = tensor
    meta = {"format": "pt", **(metadata or {}), CONFIG_KEY: _config_json(config)}
    if arch is not None:
        meta[ARCH_KEY] = arch
    path = Path(path)
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


@dataclass(frozen=True)
class SafetensorsCheckpoint:
    """A rem checkpoint read back: tensors, the model config (a dict) and the architecture name."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None
    arch: str | None
    metadata: dict[str, str]


def load_checkpoint_safetensors(path: str | Path) -> SafetensorsCheckpoint:
    """Read a file written by :func:`save_checkpoint_safetensors` (or any safetensors file)."""
    path = Path(path)
    tensors, metadata = load_safetensors(path)
    config = None
    if CONFIG_KEY in metadata:
        try:
            config = json.loads(metadata[CONFIG_KEY])
        except ValueError as exc:
            raise RemError(f"config metadata is not JSON: {exc}", path=path) from None
    return SafetensorsCheckpoint(tensors, config, metadata.get(ARCH_KEY), metadata)


def build_from_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the registered model a rem checkpoint was saved from and load its weights."""
    from rem_models.registry import get_model, get_model_entry

    checkpoint = load_checkpoint_safetensors(path)
    if checkpoint.arch is None or checkpoint.config is None:
        raise RemError(
            f"not a rem model checkpoint: metadata lacks {ARCH_KEY!r} or {CONFIG_KEY!r}",
            path=path,
        )
    config_type = type(get_model_entry(checkpoint.arch).config)
    try:
        config = config_type.model_validate(checkpoint.config)
    except ValueError as exc:
        raise RemError(
            f"stored config does not fit {config_type.__name__}: {exc}", path=path
        ) from None
    model = get_model(checkpoint.arch, config)
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True)
    except RuntimeError as exc:
        raise RemError(f"weights do not fit {checkpoint.arch!r}: {exc}", path=path) from None
    return model
