"""Grounding items from SeqTR's ``instances.json`` or the refer format (through rem-core).

SeqTR's file is ``{split: [{image_id, bbox (XYWH), mask, expressions, height, width}, ...]}``,
one entry per object; the refer format (``refs(*).p`` or rem referring JSON) is read with
:func:`rem_core.refer.read_referring`, one item per ref. Boxes are XYWH in original pixels,
masks COCO polygons or RLE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError

COCO_TRAIN2014 = "COCO_train2014_{image_id:012d}.jpg"


@dataclass
class GroundingItem:
    """One referred object with its expressions; ``bbox`` XYWH, ``mask`` polygons/RLE or None."""

    ref_id: int
    image_id: int
    file_name: str
    height: int
    width: int
    bbox: tuple[float, float, float, float]
    expressions: list[str]
    mask: Any = None
    sent_ids: list[int | None] = field(default_factory=list)

    def decode_mask(self) -> np.ndarray:
        """(height, width) bool mask (polygons merged), or an error when there is none."""
        if self.mask is None:
            raise RemError(f"ref {self.ref_id} has no mask")
        segm = self.mask
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, self.height, self.width))
        elif isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, self.height, self.width)
        else:
            rle = segm
        return mask_utils.decode(rle).astype(bool)


def _entry(
    record: Mapping[str, Any], index: int, path: Path, split: str, template: str
) -> GroundingItem:
    where = f"{split}[{index}]"
    try:
        image_id = int(record["image_id"])
        bbox = tuple(float(v) for v in record["bbox"])
        expressions = [str(e) for e in record["expressions"]]
        height, width = int(record["height"]), int(record["width"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RemError(f"bad or missing field: {exc}", path=path, where=where) from None
    if len(bbox) != 4 or not expressions:
        raise RemError("needs a 4-number bbox and at least one expression", path=path, where=where)
    return GroundingItem(
        ref_id=int(record.get("ref_id", index)),
        image_id=image_id,
        file_name=str(record.get("file_name") or template.format(image_id=image_id)),
        height=height,
        width=width,
        bbox=bbox,  # type: ignore[arg-type]
        expressions=expressions,
        mask=record.get("mask"),
    )


def read_seqtr_instances(
    path: str | Path, split: str, *, file_name_template: str = COCO_TRAIN2014
) -> list[GroundingItem]:
    """Items of ``split`` in a SeqTR ``instances.json`` (``ref_id`` = index unless given)."""
    from rem_core.io import read_json

    path = Path(path)
    data = read_json(path)
    if not isinstance(data, Mapping):
        raise RemError("expected {split: [entries]}", path=path)
    if split not in data:
        raise RemError(f"no split {split!r}; the file has {sorted(data)}", path=path)
    return [_entry(r, i, path, split, file_name_template) for i, r in enumerate(data[split])]


def read_refer_items(
    path: str | Path, split: str | None = None, instances: str | Path | None = None
) -> list[GroundingItem]:
    """Items from a refer ``refs(*).p`` (``instances``: its COCO file, default beside it) or a
    rem referring JSON, one per ref."""
    from rem_core.refer import read_referring

    items = []
    for s in read_referring(path, split=split, instances=instances):
        if s.bbox is None:
            raise RemError(f"ref {s.ref_id} has no bbox", path=path)
        segm = s.model_dump(mode="json")["segmentation"] if s.segmentation is not None else None
        items.append(
            GroundingItem(
                ref_id=s.ref_id,
                image_id=s.image_id,
                file_name=s.file_name or COCO_TRAIN2014.format(image_id=s.image_id),
                height=s.height,
                width=s.width,
                bbox=tuple(s.bbox),  # type: ignore[arg-type]
                expressions=[t.sent for t in s.sentences],
                mask=segm,
                sent_ids=[t.sent_id for t in s.sentences],
            )
        )
    return items


def write_seqtr_instances(path: str | Path, splits: Mapping[str, list[GroundingItem]]) -> Path:
    """Write items in SeqTR's ``instances.json`` layout (atomic)."""
    from rem_core.io import save_json

    out = {
        split: [
            {
                "ref_id": it.ref_id,
                "image_id": it.image_id,
                "file_name": it.file_name,
                "bbox": list(it.bbox),
                "mask": it.mask,
                "expressions": it.expressions,
                "height": it.height,
                "width": it.width,
            }
            for it in items
        ]
        for split, items in splits.items()
    }
    path = Path(path)
    save_json(path, out)
    return path
