"""Overriding fields of a pydantic config: ``--set key=value`` on the CLI, keywords in Python.

Keys are dotted paths into nested configs (``backbone.depth=2``). Values are read as JSON when
they parse (``2``, ``0.5``, ``true``, ``[2, 5]``, ``null``) and kept as strings otherwise, so
``--set name=vit`` needs no quotes. Every key is checked against the config's fields before
pydantic validates the values, so a typo names the key and lists the valid ones instead of
surfacing as a generic validation error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rem_core.errors import RemError

C = TypeVar("C", bound=BaseModel)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "name=vit"]`` into ``{"a.b": 1, "name": "vit"}``.

    A later item for the same key wins, as on most command lines.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RemError(f"expected KEY=VALUE, got {item!r}", where="--set")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parsed[key] = value
    return parsed


def _valid_keys(model: BaseModel) -> str:
    return ", ".join(sorted(type(model).model_fields)) or "(none)"


def _set_path(model: BaseModel, tree: dict[str, Any], key: str, value: Any) -> None:
    """Place ``value`` at dotted ``key`` inside ``tree`` (a dump of ``model``), checking names."""
    parts = key.split(".")
    node_model: Any = model
    node = tree
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        last = depth == len(parts) - 1
        if isinstance(node_model, BaseModel):
            if part not in type(node_model).model_fields:
                scope = f" under {prefix!r}" if prefix else ""
                raise RemError(
                    f"unknown config key {key!r}: no field {part!r}{scope}; "
                    f"valid keys{scope}: {_valid_keys(node_model)}",
                    where="--set",
                )
            child_model = getattr(node_model, part)
        elif isinstance(node_model, dict):
            # A dict-valued field takes any sub-key (e.g. a metrics or per-level table).
            child_model = node_model.get(part)
        else:
            raise RemError(
                f"config key {key!r}: {prefix!r} is a {type(node_model).__name__}, "
                "it has no sub-keys",
                where="--set",
            )
        if last:
            node[part] = value
            return
        if not isinstance(node.get(part), dict):
            if isinstance(child_model, dict) or child_model is None:
                node[part] = {}
            else:
                raise RemError(
                    f"config key {key!r}: {'.'.join(parts[: depth + 1])!r} is a "
                    f"{type(child_model).__name__}, it has no sub-keys",
                    where="--set",
                )
        node = node[part]
        node_model = child_model


def _flatten(model: BaseModel, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Expand nested mapping values aimed at sub-configs into dotted keys.

    ``{"backbone": {"depth": 2}}`` becomes ``{"backbone.depth": 2}`` when ``backbone`` is a config,
    so a keyword override changes one field instead of replacing the whole sub-config. A mapping
    aimed at a plain ``dict`` field replaces it.
    """
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        target: Any = model
        for part in key.split("."):
            target = getattr(target, part, None) if isinstance(target, BaseModel) else None
        if isinstance(target, BaseModel) and isinstance(value, Mapping):
            for sub_key, sub_value in _flatten(target, value).items():
                flat[f"{key}.{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def override_config(config: C, overrides: Mapping[str, Any]) -> C:
    """Return a validated copy of ``config`` with ``overrides`` applied; ``config`` is unchanged.

    Keys may be dotted; a mapping value aimed at a nested config is merged field by field.
    Unknown keys and invalid values raise :class:`~rem_core.errors.RemError`.
    """
    tree = config.model_dump(mode="python")
    for key, value in _flatten(config, overrides).items():
        _set_path(config, tree, key, value)
    try:
        return type(config).model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RemError(
            f"invalid {type(config).__name__} override: {problems}", where="--set"
        ) from None


def apply_overrides(config: C, items: Iterable[str]) -> C:
    """Apply ``--set key=value`` strings to ``config`` (see :func:`parse_overrides`)."""
    return override_config(config, parse_overrides(items))
