"""Stage 2: merge COCO-fied LVIS annotations into COCO (refine.md §2).

The rule is the reference's count rule, kept on purpose: for every (image, category) group, the
LVIS annotations replace the COCO ones when LVIS has *strictly more* of them (crowd included);
LVIS groups without a COCO group are appended. There is no IoU matching.

Fixes over the reference (refine.md §5): LVIS-sourced annotations always get ``iscrowd`` 0 (#11),
the not-exhaustive filter uses sets (#12), the ``image_id*1000 + idx`` id scheme refuses an image
with more than 1000 merged annotations (index 1000 would take the next image's first id) instead
of colliding, and a sequential scheme is offered (#13). LVIS
images that are absent from the COCO file are dropped (counted) rather than producing annotations
for unknown images, which only matters when the COCO file is a subset.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rem_core.errors import RemError
from rem_refine.accounting import Accounting, AccountingError
from rem_refine.lvis_map import LVIS_TO_COCO, check_lvis_categories

Split = Literal["train", "val"]
IdScheme = Literal["ref", "sequential"]
ID_STRIDE = 1000
"""``ref`` id scheme: ``id = image_id * ID_STRIDE + index within the image``."""

# Reasons, fixed strings so the accounting can count them.
KEPT_NO_LVIS = "no LVIS group"
KEPT_NOT_LARGER = "LVIS group not larger"
REPLACED = "replaced by a larger LVIS group"
REPLACED_CROWD = "crowd replaced by a larger LVIS group"
ADDED_LARGER = "LVIS group larger than COCO group"
ADDED_LVIS_ONLY = "LVIS-only group"
DROP_OTHER_SPLIT = "image not in this split"
DROP_NOT_IN_COCO = "image not in COCO file"
DROP_UNMAPPED = "category has no COCO pair"
DROP_NOT_EXHAUSTIVE = "category not exhaustive on image (val)"
DROP_NOT_LARGER = "LVIS group not larger than COCO group"


def _int_field(record: Any, key: str, path: str | Path | None, where: str) -> int:
    if not isinstance(record, Mapping):
        raise RemError("expected an object", path=path, where=where)
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RemError(f"'{key}' must be an integer, got {value!r}", path=path, where=where)
    return value


def _list_field(data: Any, key: str, path: str | Path | None, required: bool = True) -> list:
    if not isinstance(data, Mapping):
        raise RemError("expected a JSON object at the top level", path=path)
    value = data.get(key)
    if value is None and not required:
        return []  # an image-info file (no annotations) is a valid, empty input
    if not isinstance(value, list):
        raise RemError(f"missing or non-list '{key}'", path=path, where=key)
    return value


def image_split(url: str) -> str | None:
    """``train`` or ``val`` from a COCO image URL such as ``http://…/val2017/0001.jpg``, else None.

    The reference tests whether the split name occurs in ``coco_url``; matching whole path
    segments (``val2017``) gives the same answer on COCO URLs without false hits elsewhere.
    """
    for segment in url.split("/"):
        for split in ("train", "val"):
            if segment.startswith(split):
                return split
    return None


def _tag(ann: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A copy of ``ann`` with provenance and an explicit ``iscrowd`` (LVIS has none: read as 0)."""
    out = dict(ann)
    out.setdefault("iscrowd", 0)
    out["source"] = source
    out["source_id"] = ann["id"]
    return out


def merge_lvis(
    coco: Mapping[str, Any],
    lvis_files: Sequence[Mapping[str, Any]],
    split: Split,
    *,
    not_exhaustive_filter: bool | None = None,
    id_scheme: IdScheme = "ref",
    coco_path: str | Path | None = None,
    lvis_paths: Sequence[str | Path | None] | None = None,
) -> tuple[dict[str, Any], Accounting]:
    """Merge COCO-fied LVIS into ``coco``; return the merged dataset and its accounting.

    ``coco`` and each of ``lvis_files`` are raw COCO-format dicts (as ``json`` loads them).
    ``not_exhaustive_filter`` defaults to ``split == "val"``, as in the reference. The output
    keeps ``coco``'s top-level keys (images, categories, info, ...) and replaces
    ``annotations``; every annotation carries ``source`` ("coco" or "lvis"), ``source_id`` (its
    id in that file) and ``iscrowd``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if id_scheme not in ("ref", "sequential"):
        raise ValueError(f"id_scheme must be 'ref' or 'sequential', got {id_scheme!r}")
    if not_exhaustive_filter is None:
        not_exhaustive_filter = split == "val"
    lvis_paths = list(lvis_paths) if lvis_paths is not None else [None] * len(lvis_files)

    coco_images = _list_field(coco, "images", coco_path)
    coco_anns = _list_field(coco, "annotations", coco_path, required=False)
    categories = _list_field(coco, "categories", coco_path)
    image_ids = {
        _int_field(im, "id", coco_path, f"images[{i}]") for i, im in enumerate(coco_images)
    }

    # -- COCO-fied LVIS: images of this split, mapped categories, COCO-id not-exhaustive sets ----
    lvis_drop: dict[str, Counter[int]] = defaultdict(Counter)  # reason -> LVIS/COCO category
    lvis_total = 0
    in_split: set[int] = set()
    not_exhaustive: dict[int, set[int]] = defaultdict(set)
    for data, path in zip(lvis_files, lvis_paths):
        check_lvis_categories(_list_field(data, "categories", path), path=path)
        for i, im in enumerate(_list_field(data, "images", path)):
            img_id = _int_field(im, "id", path, f"images[{i}]")
            url = im.get("coco_url")
            # Without a URL the split is unknown; membership in the COCO file decides instead.
            if (image_split(url) == split) if isinstance(url, str) else (img_id in image_ids):
                in_split.add(img_id)
                ids = im.get("not_exhaustive_category_ids") or []
                not_exhaustive[img_id].update(LVIS_TO_COCO[c] for c in ids if c in LVIS_TO_COCO)

    lvis_groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for data, path in zip(lvis_files, lvis_paths):
        for i, ann in enumerate(_list_field(data, "annotations", path, required=False)):
            where = f"annotations[{i}]"
            _int_field(ann, "id", path, where)
            img_id = _int_field(ann, "image_id", path, where)
            lvis_cat = _int_field(ann, "category_id", path, where)
            lvis_total += 1
            coco_cat = LVIS_TO_COCO.get(lvis_cat)
            if img_id not in in_split:
                lvis_drop[DROP_OTHER_SPLIT][coco_cat or 0] += 1
            elif img_id not in image_ids:
                lvis_drop[DROP_NOT_IN_COCO][coco_cat or 0] += 1
            elif coco_cat is None:
                lvis_drop[DROP_UNMAPPED][0] += 1
            elif not_exhaustive_filter and coco_cat in not_exhaustive[img_id]:
                lvis_drop[DROP_NOT_EXHAUSTIVE][coco_cat] += 1
            else:
                tagged = _tag(ann, "lvis")
                tagged["category_id"] = coco_cat
                lvis_groups.setdefault((img_id, coco_cat), []).append(tagged)

    # -- the count rule, per COCO group in first-appearance order ------------------------------
    acc = Accounting("merge", categories=categories)
    coco_groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for i, ann in enumerate(coco_anns):
        where = f"annotations[{i}]"
        _int_field(ann, "id", coco_path, where)
        key = (
            _int_field(ann, "image_id", coco_path, where),
            _int_field(ann, "category_id", coco_path, where),
        )
        coco_groups.setdefault(key, []).append(_tag(ann, "coco"))

    merged: list[dict[str, Any]] = []
    taken: Counter[int] = Counter()
    for key, group in coco_groups.items():
        lvis_group = lvis_groups.get(key, [])
        if len(lvis_group) > len(group):
            detail = f"LVIS {len(lvis_group)} > COCO {len(group)}"
            for ann in group:
                acc.removed(ann, REPLACED_CROWD if ann.get("iscrowd") else REPLACED, detail)
            for ann in lvis_group:
                acc.added(ann, ADDED_LARGER)
            merged.extend(lvis_group)
            taken[key[1]] += len(lvis_group)
        else:
            for ann in group:
                acc.kept(ann, KEPT_NOT_LARGER if lvis_group else KEPT_NO_LVIS)
            lvis_drop[DROP_NOT_LARGER][key[1]] += len(lvis_group)
            merged.extend(group)
    for key, lvis_group in lvis_groups.items():
        if key not in coco_groups:
            for ann in lvis_group:
                acc.added(ann, ADDED_LVIS_ONLY)
            merged.extend(lvis_group)
            taken[key[1]] += len(lvis_group)

    _assign_ids(merged, id_scheme, coco_path)

    n_dropped = sum(sum(c.values()) for c in lvis_drop.values())
    if n_dropped + sum(taken.values()) != lvis_total:
        raise AccountingError(
            f"merge: {lvis_total} LVIS annotations but {sum(taken.values())} taken "
            f"and {n_dropped} dropped"
        )
    acc.check(coco_anns, merged)
    sources = Counter(a["source"] for a in merged)
    acc.extra.update(
        {
            "split": split,
            "not_exhaustive_filter": not_exhaustive_filter,
            "id_scheme": id_scheme,
            "images": len(coco_images),
            "annotations": len(merged),
            "from_source": {"coco": sources["coco"], "lvis": sources["lvis"]},
            "lvis": {
                "files": len(lvis_files),
                "annotations": lvis_total,
                "taken": sum(taken.values()),
                "taken_per_category": {str(c): n for c, n in sorted(taken.items())},
                "dropped": {r: sum(c.values()) for r, c in sorted(lvis_drop.items())},
                "dropped_per_category": {
                    r: {str(cat): n for cat, n in sorted(c.items()) if n}
                    for r, c in sorted(lvis_drop.items())
                    if r in (DROP_NOT_EXHAUSTIVE, DROP_NOT_LARGER)
                },
            },
        }
    )
    out = dict(coco)
    out["annotations"] = merged
    return out, acc


def _assign_ids(anns: list[dict[str, Any]], scheme: IdScheme, path: str | Path | None) -> None:
    """Re-id in merged order: ``image_id*1000 + index within image`` or 1, 2, 3, ..."""
    if scheme == "sequential":
        for i, ann in enumerate(anns, start=1):
            ann["id"] = i
        return
    per_image: Counter[int] = Counter()
    for ann in anns:
        img_id = ann["image_id"]
        idx = per_image[img_id]
        if idx >= ID_STRIDE:
            raise RemError(
                f"image {img_id} has more than {ID_STRIDE} merged annotations, so the "
                f"image_id*{ID_STRIDE}+index id scheme would collide; use --id-scheme sequential",
                path=path,
            )
        per_image[img_id] = idx + 1
        ann["id"] = img_id * ID_STRIDE + idx
