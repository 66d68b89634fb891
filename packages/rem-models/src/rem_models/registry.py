"""The model registry: architectures by name, each with a default config and its weights.

A family module registers small builder functions, one per variant, that differ only in the
default numbers of their config::

    class MLPConfig(ModelConfig):
        width: int = 64

    @register_model("mlp-small", config=MLPConfig(width=32), weights=[Weights(...)])
    def mlp_small(config: MLPConfig) -> nn.Module:
        return MLP(config)

``get_model("mlp-small", width=16)`` validates the override against ``MLPConfig`` and calls
the builder with the resulting config. Builders receive a config and nothing else, so a config
saved beside a checkpoint is enough to rebuild the model.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from rem_core.errors import RemError
from rem_models.overrides import override_config
from rem_models.weights import Weights

if TYPE_CHECKING:
    import torch
    from torch import nn


class ModelConfig(BaseModel):
    """Base of every architecture config: typed hyperparameters, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid")


Builder = Callable[[Any], "nn.Module"]
Converter = Callable[[dict[str, "torch.Tensor"], Any], dict[str, "torch.Tensor"]]
"""``converter(official_state_dict, config) -> rem_state_dict``: maps a released checkpoint's
tensors (as :func:`rem_models.checkpoints.load_state_dict_file` returns them) onto the names and
layouts of the registered model built from ``config``; used by ``rem convert-checkpoint``."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its builder, default config and published weights.

    ``converter`` maps released checkpoints onto the model (see :data:`Converter`);
    ``train_defaults`` are dotted ``TrainConfig`` overrides giving the variant's published
    training recipe (optimizer, lr, layer decay...), applied by ``rem train`` before ``--set``.
    """

    name: str
    builder: Builder
    config: ModelConfig
    weights: tuple[Weights, ...]
    converter: Converter | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """First line of the builder's docstring, for listings."""
        doc = inspect.getdoc(self.builder) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, ModelEntry] = {}

# Modules that register architectures when imported. They are imported on the first registry
# query rather than with the package, so `import rem_models.checkpoints` stays cheap.
_FAMILY_MODULES: tuple[str, ...] = (
    "rem_models.vitdet.variants",
    "rem_models.solo.variants",
    "rem_models.lavt.variants",
    "rem_models.seqtr.variants",
    "rem_models.cim.variants",
)
_families_loaded = False


def _load_families() -> None:
    global _families_loaded
    if _families_loaded:
        return
    # Set first: a family module that queries the registry while importing must not recurse.
    _families_loaded = True
    try:
        for module in _FAMILY_MODULES:
            importlib.import_module(module)
    except BaseException:
        _families_loaded = False  # report the broken import again next time, not a short list
        raise


def _config_from_annotation(name: str, builder: Builder) -> ModelConfig:
    """Default config for a builder registered without one: its ``config`` annotation's defaults."""
    params = list(inspect.signature(builder).parameters)
    try:
        hints = typing.get_type_hints(builder) if params else {}
    except NameError as exc:  # a string annotation naming a class local to a function
        raise TypeError(
            f"register_model({name!r}): cannot resolve the builder's annotations ({exc}); "
            "pass config=..."
        ) from None
    config_type = hints.get(params[0]) if params else None
    if not (isinstance(config_type, type) and issubclass(config_type, ModelConfig)):
        raise TypeError(
            f"register_model({name!r}): pass config=... or annotate the builder's first "
            "parameter with a ModelConfig subclass"
        )
    return config_type()


def register_model(
    name: str,
    *,
    config: ModelConfig | None = None,
    weights: Sequence[Weights] = (),
    converter: Converter | None = None,
    train_defaults: Mapping[str, Any] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(config) -> nn.Module`` under ``name``.

    ``config`` is the variant's default config; without it the builder's first parameter must be
    annotated with a :class:`ModelConfig` subclass whose defaults are used. Registering a name
    twice is a programming error (``ValueError``), as is a weights name used twice.
    ``converter`` turns a released checkpoint's state dict into this model's (see
    :data:`Converter`); ``train_defaults`` holds dotted ``TrainConfig`` overrides for
    ``rem train`` (checked when a training run starts).
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        default = config if config is not None else _config_from_annotation(name, builder)
        if not isinstance(default, ModelConfig):
            raise TypeError(f"register_model({name!r}): config must be a ModelConfig instance")
        names = [w.name for w in weights]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model {name!r}: duplicate weights names {duplicates}")
        if converter is not None and not callable(converter):
            raise TypeError(f"register_model({name!r}): converter must be callable")
        _REGISTRY[name] = ModelEntry(
            name,
            builder,
            default.model_copy(deep=True),
            tuple(weights),
            converter,
            dict(train_defaults or {}),
        )
        return builder

    return decorate


def _unknown(kind: str, name: str, known: Iterable[str]) -> RemError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        hint = f"; did you mean {', '.join(close)}?"
    elif known:
        hint = f"; known: {', '.join(known)}"
    else:
        hint = "; none are registered"
    return RemError(f"unknown {kind} {name!r}{hint}")


def list_models(pattern: str | None = None) -> list[str]:
    """Registered architecture names, sorted; ``pattern`` is a shell glob such as ``"vitdet-*"``."""
    _load_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def get_model_entry(name: str) -> ModelEntry:
    """The registry record for ``name``; :class:`RemError` naming close matches if unknown."""
    _load_families()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise _unknown("model", name, _REGISTRY)
    return entry


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """A fresh copy of the default config of ``name``, with ``overrides`` applied."""
    config = get_model_entry(name).config.model_copy(deep=True)
    return override_config(config, overrides) if overrides else config


def get_model(name: str, config: ModelConfig | None = None, **overrides: Any) -> nn.Module:
    """Build architecture ``name`` with freshly initialised parameters (no weights loaded).

    ``config`` replaces the default config (it must be the same config class); ``overrides``
    then change single fields, e.g. ``get_model("vitdet-b", num_classes=3)``.
    """
    entry = get_model_entry(name)
    if config is None:
        config = entry.config.model_copy(deep=True)
    elif type(config) is not type(entry.config):
        raise RemError(
            f"model {name!r} takes a {type(entry.config).__name__}, got a {type(config).__name__}"
        )
    if overrides:
        config = override_config(config, overrides)
    return entry.builder(config)


def parameter_count(name: str, config: ModelConfig | None = None, **overrides: Any) -> int:
    """Number of parameters of ``name``, built on the meta device (no memory, no init cost)."""
    import torch

    with torch.device("meta"):
        model = get_model(name, config, **overrides)
    return sum(p.numel() for p in model.parameters())


def list_weights(model: str) -> list[Weights]:
    """The published weights of architecture ``model``, in registration order."""
    return list(get_model_entry(model).weights)


def get_weights(model: str, name: str) -> Weights:
    """The weights record ``name`` of architecture ``model``."""
    for weights in get_model_entry(model).weights:
        if weights.name == name:
            return weights
    raise _unknown(f"weights for model {model!r}:", name, (w.name for w in list_weights(model)))
