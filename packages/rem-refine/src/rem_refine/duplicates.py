"""Find same-image instance pairs whose masks overlap with IoU above a threshold (default 0.8).

COCO-ReM's manual corrections came from inspecting such pairs: duplicate masks already in COCO and
duplicates introduced by the LVIS merge, often with different labels (cup vs wine glass). This
module proposes them as a *draft* corrections file for a person to review; it decides nothing.

The proposal is deterministic: within a pair the annotation that comes later in the file is
proposed for removal, unless either side was already proposed through an earlier pair (so a chain
A~B, B~C proposes B only, keeping C, which need not duplicate A). Every pair is listed either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rem_core import masks
from rem_core.errors import RemError
from rem_refine.correct import check_records, provenance
from rem_refine.corrections import Corrections, DuplicatePair, DuplicateSide, InstanceRef

T = TypeVar("T")

SKIP_CROWD = "crowd (use include_crowd)"
SKIP_NO_SEGMENTATION = "no segmentation"
SKIP_UNREADABLE = "unreadable segmentation"
SKIP_EMPTY = "empty mask"
SKIP_UNKNOWN_IMAGE = "image not in file"


@dataclass
class DuplicateSearch:
    """What :func:`find_duplicates` found: pairs in file order and why annotations were skipped."""

    threshold: float
    pairs: list[DuplicatePair] = field(default_factory=list)
    images: int = 0
    annotations_compared: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _side(ann: Mapping[str, Any], area: int) -> DuplicateSide:
    image_id, source, source_id = provenance(ann)
    return DuplicateSide(
        image_id=image_id,
        source=source,
        source_id=source_id,
        id=ann["id"],
        category_id=ann["category_id"],
        area=float(area),
    )


def find_duplicates(
    dataset: Mapping[str, Any],
    *,
    threshold: float = 0.8,
    same_category: bool = False,
    include_crowd: bool = False,
    track: Callable[[Iterable[T], int], Iterable[T]] | None = None,
    path: str | Path | None = None,
) -> DuplicateSearch:
    """All pairs of annotations on one image with mask IoU strictly above ``threshold``.

    IoU is the plain intersection over union (crowd semantics off) of the masks at the image's
    (H, W). Pairs of different categories are included unless ``same_category``. Crowd
    annotations are left out unless ``include_crowd``. ``track(iterable, total)`` may wrap the
    per-image loop (e.g. a progress bar). ``path`` names the file in input errors.
    """
    check_records(dataset, path)
    search = DuplicateSearch(threshold=threshold)
    images = {im["id"]: im for im in dataset.get("images", [])}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in dataset.get("annotations", []):
        if ann.get("iscrowd", 0) and not include_crowd:
            search.skipped[SKIP_CROWD] += 1
        elif ann["image_id"] not in images:
            search.skipped[SKIP_UNKNOWN_IMAGE] += 1
        elif not ann.get("segmentation"):
            search.skipped[SKIP_NO_SEGMENTATION] += 1
        else:
            by_image.setdefault(ann["image_id"], []).append(ann)

    groups: Iterable[tuple[int, list[dict[str, Any]]]] = by_image.items()
    if track is not None:
        groups = track(groups, len(by_image))
    proposed: set[int] = set()  # id() of annotations proposed for removal
    for image_id, anns in groups:
        search.images += 1
        image = images[image_id]
        h, w = int(image["height"]), int(image["width"])
        usable, rles = [], []
        for ann in anns:
            try:
                rle = masks.to_rle(ann["segmentation"], h, w)
            except RemError:
                search.skipped[SKIP_UNREADABLE] += 1
                continue
            usable.append(ann)
            rles.append(rle)
        area = masks.areas(rles)
        keep = area > 0
        search.skipped[SKIP_EMPTY] += int((~keep).sum())
        usable = [a for a, k in zip(usable, keep) if k]
        rles = [r for r, k in zip(rles, keep) if k]
        area = area[keep]
        search.annotations_compared += len(usable)
        if len(usable) < 2:
            continue
        ious = masks.iou(rles, rles, [0] * len(rles))
        for i, j in zip(*np.nonzero(np.triu(ious > threshold, k=1))):
            a, b = usable[i], usable[j]
            if same_category and a["category_id"] != b["category_id"]:
                continue
            propose = id(a) not in proposed and id(b) not in proposed
            if propose:
                proposed.add(id(b))
            search.pairs.append(
                DuplicatePair(
                    iou=float(ious[i, j]),
                    a=_side(a, int(area[i])),
                    b=_side(b, int(area[j])),
                    proposed=propose,
                )
            )
    return search


def draft_corrections(
    search: DuplicateSearch,
    categories: Iterable[Mapping[str, Any]] = (),
    *,
    description: str | None = None,
) -> Corrections:
    """A draft corrections file: one removal per proposed pair, every pair listed for review.

    A removal's comment reads ``"IoU 0.934 with coco:42 (wine glass); cup -> wine glass"``:
    the removed label, then the kept one.
    """
    names = {c["id"]: c.get("name", str(c["id"])) for c in categories}
    remove = []
    for pair in search.pairs:
        if not pair.proposed:
            continue
        a, b = pair.a, pair.b
        name_a = names.get(a.category_id, str(a.category_id))
        name_b = names.get(b.category_id, str(b.category_id))
        comment = (
            f"IoU {pair.iou:.3f} with {a.source}:{a.source_id} ({name_a}); {name_b} -> {name_a}"
        )
        remove.append(
            InstanceRef(
                image_id=b.image_id, source=b.source, source_id=b.source_id, comment=comment
            )
        )
    return Corrections(
        draft=True,
        description=description
        or f"draft from rem find-duplicates: same-image pairs with IoU > {search.threshold}",
        remove=remove,
        duplicates=search.pairs,
    )
