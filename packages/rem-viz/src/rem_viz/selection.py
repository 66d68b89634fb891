"""Which images and categories to show: resolving user filters against a file.

Unknown names and ids are user errors that list what is valid, so a typo costs one retry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from rem_core.errors import RemError
from rem_viz.instances import AnnotationSet


def _normalise(name: str) -> str:
    # "traffic light", "Traffic_Light" and "traffic-light" name the same class (LVIS uses "_").
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def resolve_categories(
    categories: Mapping[int, dict],
    names: Iterable[str] = (),
    ids: Iterable[int] = (),
    *,
    path: str | Path | None = None,
) -> set[int] | None:
    """Category ids for the given names and ids; None when neither is given (all categories).

    ``categories`` maps id -> category record (``AnnotationSet.categories``; ``path`` names its
    file in errors). A name matches exactly, else ignoring case, spaces, '_' and '-'. An unknown
    name or id raises :class:`RemError` listing the valid ones.
    """
    names, ids = list(names), list(ids)
    if not names and not ids:
        return None
    by_name = {c.get("name"): cid for cid, c in categories.items()}
    by_norm: dict[str, list[int]] = {}
    for cid, c in categories.items():
        by_norm.setdefault(_normalise(str(c.get("name", ""))), []).append(cid)
    chosen: set[int] = set()
    for name in names:
        if name in by_name:
            chosen.add(by_name[name])
            continue
        loose = by_norm.get(_normalise(name), [])
        if len(loose) == 1:
            chosen.add(loose[0])
            continue
        valid = sorted(str(n) for n in by_name)
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise RemError(
            f"unknown category name {name!r}{hint}; valid names ({len(valid)}): {', '.join(valid)}",
            path=path,
            where="--class-name",
        )
    for cid in ids:
        if cid not in categories:
            valid_ids = ", ".join(str(i) for i in sorted(categories))
            raise RemError(
                f"unknown category id {cid}; valid ids: {valid_ids}",
                path=path,
                where="--category-id",
            )
        chosen.add(cid)
    return chosen


def select_images(
    aset: AnnotationSet,
    image_ids: Sequence[int] = (),
    category_ids: set[int] | None = None,
    max_images: int | None = None,
    skip_empty: bool = True,
) -> list[int]:
    """Image ids to show, in ascending id order (deterministic whatever the file order).

    Explicit ``image_ids`` must exist and keep the given order. Otherwise, with ``skip_empty``,
    images without an instance (of ``category_ids`` when given) are left out, like COCO-ReM's
    visualiser does. ``max_images`` keeps the first N.
    """
    if max_images is not None and max_images < 0:
        raise RemError(f"must be >= 0, got {max_images}", where="--max-images")
    if image_ids:
        missing = [i for i in image_ids if i not in aset.images]
        if missing:
            raise RemError(
                f"image id {missing[0]} is not in the file ({len(aset.images)} images, ids "
                f"{min(aset.images, default='-')}..{max(aset.images, default='-')})",
                path=aset.path,
                where="--image-id",
            )
        chosen = list(dict.fromkeys(image_ids))
    else:
        chosen = []
        for image_id in aset.image_order:
            inst = aset.instances.get(image_id, [])
            if category_ids is not None:
                inst = [x for x in inst if x.category_id in category_ids]
            if inst or not skip_empty:
                chosen.append(image_id)
    return chosen if max_images is None else chosen[:max_images]
