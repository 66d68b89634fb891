"""Which categories get box prompts only (no point rounds), by name in COCO or LVIS spelling.

The reference looked the names up with an exact dictionary access, so its default
``"dining table"`` raised KeyError on LVIS, where the class is ``dining_table`` (refine.md §5 #4).
Here names are compared after folding case, underscores and repeated spaces, against each
category's ``name`` and (LVIS) ``synonyms``; ids can be given directly; an unknown name is
returned for a warning instead of stopping the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DEFAULT_BOX_ONLY_NAMES: tuple[str, ...] = (
    "bed",
    "bicycle",
    "bowl",
    "dining table",
    "motorcycle",
    "scissors",
)
"""The reference's box-only classes (COCO ids 65, 2, 51, 67, 4, 87)."""


def fold_name(name: str) -> str:
    """Case-, underscore- and spacing-insensitive form: ``Dining_Table`` -> ``dining table``."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()


def resolve_box_only(
    categories: Sequence[Mapping[str, Any]],
    names: Iterable[str] = DEFAULT_BOX_ONLY_NAMES,
    ids: Iterable[int] = (),
) -> tuple[set[int], list[str]]:
    """Category ids for ``names`` and ``ids``; returns ``(ids, names that matched nothing)``.

    A name matches a category's own name first; a synonym is used only when no category has
    that name, so a synonym shared by several LVIS classes cannot hide the intended one.
    """
    by_name: dict[str, int] = {}
    by_synonym: dict[str, list[int]] = {}
    for cat in categories:
        by_name.setdefault(fold_name(str(cat.get("name", ""))), int(cat["id"]))
        for syn in cat.get("synonyms") or ():
            by_synonym.setdefault(fold_name(str(syn)), []).append(int(cat["id"]))
    known_ids = {int(c["id"]) for c in categories}
    resolved: set[int] = set()
    unknown: list[str] = []
    for name in names:
        key = fold_name(name)
        if key in by_name:
            resolved.add(by_name[key])
        elif len(by_synonym.get(key, ())) == 1:
            resolved.add(by_synonym[key][0])
        else:
            unknown.append(name)
    for cat_id in ids:
        if int(cat_id) in known_ids:
            resolved.add(int(cat_id))
        else:
            unknown.append(f"id {cat_id}")
    return resolved, unknown


def split_names(values: Iterable[str]) -> list[str]:
    """Flatten repeated and comma-separated CLI values: ``("bed,bowl", "dining table")``."""
    out = []
    for value in values:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out
