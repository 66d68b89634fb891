"""Stage 3: apply a corrections file (removals, crowd flags, additions) to an annotation file.

Reference behaviour kept (refine.md §3.2): the order remove -> crowd -> add; annotations are
matched by ``(image_id, source, source_id)``; additions are stored as uncompressed RLE at the
image size with ``area`` the pixel count and ``bbox`` the inclusive extent (integers), get
``id = 2024000000 + list index``, ``source = "manual"``, ``source_id = id``, ``iscrowd = 0`` and
are appended at the end.

Fix (refine.md §5 #14): the reference ignores entries that match nothing and logs only the list
length. Here every entry's match count is reported, and ``strict`` turns an unmatched entry into
an error. An addition on an unknown image or category, with an RLE of the wrong size, or with an
empty mask is bad input (RemError) rather than a silently broken record.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rem_core import masks
from rem_core.errors import RemError
from rem_refine.accounting import Accounting
from rem_refine.corrections import Addition, Corrections, InstanceRef

ADDITION_ID_BASE = 2024000000
"""Reference id of the first manual addition; the i-th addition gets ``base + i``."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_records(dataset: Mapping[str, Any], path: str | Path | None = None) -> None:
    """RemError for the first image or annotation lacking a field these stages read.

    Images need integer ``id``, ``height`` and ``width``; annotations need integer ``id``,
    ``image_id`` and ``category_id``, and ``source`` (str) / ``source_id`` (int) when present.
    """
    for i, im in enumerate(dataset.get("images") or []):
        for key in ("id", "height", "width"):
            if not isinstance(im, Mapping) or not _is_int(im.get(key)):
                got = im.get(key) if isinstance(im, Mapping) else im
                raise RemError(
                    f"'{key}' must be an integer, got {got!r}", path=path, where=f"images[{i}]"
                )
    for i, ann in enumerate(dataset.get("annotations") or []):
        if not isinstance(ann, Mapping):
            raise RemError("expected an object", path=path, where=f"annotations[{i}]")
        for key in ("id", "image_id", "category_id"):
            if not _is_int(ann.get(key)):
                raise RemError(
                    f"'{key}' must be an integer, got {ann.get(key)!r}",
                    path=path,
                    where=f"annotations[{i}]",
                )
        if "source" in ann and not isinstance(ann["source"], str):
            raise RemError("'source' must be a string", path=path, where=f"annotations[{i}]")
        if "source_id" in ann and not _is_int(ann["source_id"]):
            raise RemError("'source_id' must be an integer", path=path, where=f"annotations[{i}]")


def provenance(ann: Mapping[str, Any]) -> tuple[int, str, int]:
    """``(image_id, source, source_id)``; a plain COCO annotation is ``(image_id, "coco", id)``."""
    return (ann["image_id"], ann.get("source", "coco"), ann.get("source_id", ann["id"]))


REASON_REMOVE = "corrections: remove"
REASON_CROWD = "corrections: crowd flag"
REASON_ADD = "corrections: add"
REASON_ALREADY_CROWD = "corrections: crowd flag, already crowd"
REASON_ISCROWD_DEFAULT = "missing iscrowd set to 0"


def _detail(kind: str, index: int, entry: InstanceRef | Addition) -> str:
    """The log line's pointer into the corrections file, with the reviewer's comment."""
    return f"{kind}[{index}]" + (f": {entry.comment}" if entry.comment else "")


def _ref(index: int, entry: InstanceRef, why: str) -> dict[str, Any]:
    return {
        "index": index,
        "image_id": entry.image_id,
        "source": entry.source,
        "source_id": entry.source_id,
        "why": why,
    }


def build_addition(
    entry: Addition,
    index: int,
    image: Mapping[str, Any],
    ann_id: int,
    *,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """The annotation record for ``add[index]``: uncompressed RLE, pixel area, inclusive bbox."""
    h, w = int(image["height"]), int(image["width"])
    where = f"add[{index}].segmentation"
    seg = entry.segmentation
    if not isinstance(seg, list):
        size = tuple(seg.size)
        if size != (h, w):
            raise RemError(
                f"RLE size {list(size)} differs from image {entry.image_id}'s [height, width] "
                f"{[h, w]}",
                path=path,
                where=where,
            )
        seg = seg.model_dump()
    try:
        rle = masks.to_rle(seg, h, w)
    except RemError as exc:  # re-raised with the file and entry, which to_rle does not know
        raise RemError(exc.detail, path=path, where=where) from None
    area = int(masks.area(rle))
    if area == 0:
        raise RemError("the added mask is empty", path=path, where=where)
    return {
        "id": ann_id,
        "image_id": entry.image_id,
        "category_id": entry.category_id,
        "segmentation": masks.to_uncompressed(rle),
        "area": area,
        # Whole pixels, as the reference writes them: [x1, y1, x2 - x1 + 1, y2 - y1 + 1].
        "bbox": [int(v) for v in masks.bbox(rle)],
        "iscrowd": 0,
        "source": "manual",
        "source_id": ann_id,
    }


def apply_corrections(
    dataset: Mapping[str, Any],
    corrections: Corrections,
    *,
    strict: bool = False,
    id_base: int = ADDITION_ID_BASE,
    path: str | Path | None = None,
    corrections_path: str | Path | None = None,
) -> tuple[dict[str, Any], Accounting]:
    """Apply ``corrections`` to ``dataset`` (a raw COCO dict); return the result and its ledger.

    The input is not modified. Output order: surviving annotations in input order, then the
    additions in list order. Input annotations without ``iscrowd`` get 0 (recorded as modified).
    ``strict`` raises RemError when a removal or crowd entry matches no annotation.
    """
    check_records(dataset, path)
    anns: list[dict[str, Any]] = list(dataset.get("annotations") or [])
    acc = Accounting("correct", categories=dataset.get("categories"))

    index: dict[tuple[int, str, int], list[int]] = {}
    for i, ann in enumerate(anns):
        index.setdefault(provenance(ann), []).append(i)

    # Each input index gets one outcome; the first correction that touches it names the reason.
    removed: dict[int, str] = {}
    crowded: dict[int, str] = {}
    report: dict[str, Any] = {}

    unmatched, matched = [], 0
    for k, entry in enumerate(corrections.remove):
        hits = index.get(entry.key, [])
        if not hits:
            unmatched.append(_ref(k, entry, "no annotation with this provenance"))
            continue
        matched += 1
        for i in hits:
            removed.setdefault(i, _detail("remove", k, entry))
    report["remove"] = {
        "listed": len(corrections.remove),
        "matched": matched,
        "annotations_removed": len(removed),
        "unmatched": unmatched,
    }

    unmatched, matched = [], 0
    already = 0
    for k, entry in enumerate(corrections.crowd):
        hits = index.get(entry.key, [])
        live = [i for i in hits if i not in removed]
        if not live:
            why = "removed by a removal entry" if hits else "no annotation with this provenance"
            unmatched.append(_ref(k, entry, why))
            continue
        matched += 1
        for i in live:
            if i in crowded:
                continue
            if anns[i].get("iscrowd") == 1:
                already += 1
            crowded[i] = _detail("crowd", k, entry)
    report["crowd"] = {
        "listed": len(corrections.crowd),
        "matched": matched,
        "annotations_flagged": len(crowded) - already,
        "already_crowd": already,
        "unmatched": unmatched,
    }

    if strict:
        for kind in ("remove", "crowd"):
            if report[kind]["unmatched"]:
                first = report[kind]["unmatched"][0]
                n = len(report[kind]["unmatched"])
                raise RemError(
                    f"{n} {kind} entr{'y matches' if n == 1 else 'ies match'} no annotation "
                    f"(first: image {first['image_id']}, {first['source']}:{first['source_id']}, "
                    f"{first['why']})",
                    path=corrections_path,
                    where=f"{kind}[{first['index']}]",
                )

    images = {im["id"]: im for im in dataset.get("images") or []}
    category_ids = {c["id"] for c in dataset.get("categories", [])}
    existing_ids = {ann["id"] for ann in anns}
    additions = []
    for k, entry in enumerate(corrections.add):
        where = f"add[{k}]"
        if entry.image_id not in images:
            raise RemError(
                f"image {entry.image_id} is not in the annotation file",
                path=corrections_path,
                where=f"{where}.image_id",
            )
        if entry.category_id not in category_ids:
            raise RemError(
                f"category {entry.category_id} is not in the annotation file",
                path=corrections_path,
                where=f"{where}.category_id",
            )
        ann_id = id_base + k
        if ann_id in existing_ids:
            raise RemError(
                f"addition id {ann_id} is already used by an input annotation; "
                "choose another id base",
                path=corrections_path,
                where=where,
            )
        additions.append(
            build_addition(entry, k, images[entry.image_id], ann_id, path=corrections_path)
        )
    report["add"] = {"listed": len(corrections.add), "added": len(additions)}

    out_anns: list[dict[str, Any]] = []
    for i, ann in enumerate(anns):
        if i in removed:
            acc.removed(ann, REASON_REMOVE, removed[i])
            continue
        if i in crowded and ann.get("iscrowd") != 1:
            ann = {**ann, "iscrowd": 1}
            acc.modified(ann, REASON_CROWD, crowded[i])
        elif i in crowded:
            acc.kept(ann, REASON_ALREADY_CROWD, crowded[i])
        elif "iscrowd" not in ann:
            ann = {**ann, "iscrowd": 0}
            acc.modified(ann, REASON_ISCROWD_DEFAULT)
        else:
            acc.kept(ann)
        out_anns.append(ann)
    for k, (entry, ann) in enumerate(zip(corrections.add, additions)):
        acc.added(ann, REASON_ADD, _detail("add", k, entry))
        out_anns.append(ann)

    acc.check(anns, out_anns)
    acc.extra["corrections"] = report
    out = dict(dataset)
    out["annotations"] = out_anns
    return out, acc
