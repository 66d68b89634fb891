"""A model family's referring train / predict functions, found through the registry.

A family is the package of the module that registered the architecture (``lavt_test`` ->
``rem_models.lavt``). A family that trains on referring expressions provides
``<family>.train_run.train_referring_run`` and one that predicts them
``<family>.predict.predict_referring_run``, each taking ``(arch, refs, ...)`` first.
``rem train MODEL --refs`` and ``rem predict MODEL --refs`` call these, so no command lists
model names, and options a family does not take are refused by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

from rem_core.errors import RemError

_HOOKS = {
    "train": ("train_run", "train_referring_run"),
    "predict": ("predict", "predict_referring_run"),
}
# Keyword -> command-line flag, where they are not simply spelled alike.
_FLAGS = {"amp": "--no-amp", "overrides": "--set"}


def family_package(arch: str) -> str:
    """The package of the family that registered ``arch`` (``rem_models.seqtr``)."""
    from rem_models.registry import get_model_entry

    return get_model_entry(arch).builder.__module__.rpartition(".")[0]


def referring_hook(arch: str, kind: Literal["train", "predict"]) -> Callable[..., Any] | None:
    """The family's referring ``train`` or ``predict`` function, or None when it has none."""
    module_name, function = _HOOKS[kind]
    package = family_package(arch)
    if not package:  # registered from a top-level module: no family package
        return None
    name = f"{package}.{module_name}"
    if importlib.util.find_spec(name) is None:
        return None
    return getattr(importlib.import_module(name), function, None)


def call_hook(
    hook: Callable[..., Any],
    arch: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
) -> Any:
    """``hook(arch, *args, **kwargs, **options)``; ``options`` are what the user set.

    An option the family's function does not take is a user error naming the command-line
    flag (``--init-swin does not apply to seqtr_rec``), not a silent no-op.
    """
    accepted = inspect.signature(hook).parameters
    for key in options:
        if key not in accepted:
            flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
            raise RemError(f"{flag} does not apply to {arch}", where="--refs")
    return hook(arch, *args, **kwargs, **options)
