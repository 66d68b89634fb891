"""Any COCO segmentation (polygons, compressed or uncompressed RLE) to compressed RLE, and the
measures pycocotools computes on RLEs: area, box, IoU (with crowd semantics), union.

All of these return what pycocotools returns for the same input, with counts as ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import _mask as _coco_mask

from rem_core.errors import RemError
from rem_core.masks.codec import RleDict, canonical_rle, counts_to_rle, rle_size
from rem_core.masks.polygons import usable_polygons


def empty_rle(height: int, width: int) -> RleDict:
    """The all-zero (H, W) mask as compressed RLE."""
    return counts_to_rle([height * width], height, width)


def to_rle(segmentation: Any, height: int, width: int) -> RleDict:
    """Compressed RLE (counts str) of a COCO segmentation on an (H, W) image.

    Polygons are rasterised with pycocotools and unioned, like ``COCO.annToRLE``; polygons with
    fewer than 6 coordinates are ignored (see :mod:`rem_core.masks.polygons`), and a segmentation
    with no usable polygon is the empty mask. RLE input must have ``size == [height, width]``.
    """
    height, width = int(height), int(width)
    if isinstance(segmentation, Mapping):
        if "counts" not in segmentation or "size" not in segmentation:
            raise RemError("an RLE segmentation needs 'size' and 'counts'")
        if rle_size(segmentation) != (height, width):
            raise RemError(
                f"RLE size {list(rle_size(segmentation))} does not match the image size "
                f"{[height, width]}"
            )
        return canonical_rle(segmentation)
    if isinstance(segmentation, list | tuple | np.ndarray):
        polygons, _ = usable_polygons(segmentation)
        if not polygons:
            return empty_rle(height, width)
        rles = _coco_mask.frPoly(polygons, height, width)
        merged = rles[0] if len(rles) == 1 else _coco_mask.merge(rles, 0)
        return {"size": [height, width], "counts": merged["counts"].decode("ascii")}
    raise RemError(f"a segmentation must be polygons or an RLE dict, got {type(segmentation)}")


def to_rles(segmentations: Sequence[Any], height: int, width: int) -> list[RleDict]:
    """:func:`to_rle` for many segmentations of one (H, W) image."""
    return [to_rle(s, height, width) for s in segmentations]


def _coco_rles(rles: Sequence[Mapping[str, Any]]) -> list[dict]:
    """RLEs in the form pycocotools' C wrappers read: compressed, one shared validation of size.

    Compressed strings are passed through unchecked (decoding them all would dominate evaluation
    time); run untrusted input through :func:`to_rle` first.
    """
    out = []
    for rle in rles:
        if isinstance(rle.get("counts"), str | bytes):
            out.append({"size": list(rle_size(rle)), "counts": rle["counts"]})
        else:
            out.append(canonical_rle(rle))
    return out


def area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels."""
    return int(_coco_mask.area(_coco_rles([rle]))[0])


def areas(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Areas of many RLEs as an (N,) int64 array."""
    if not rles:
        return np.zeros(0, dtype=np.int64)
    return _coco_mask.area(_coco_rles(rles)).astype(np.int64)


def bbox(rle: Mapping[str, Any]) -> list[float]:
    """Tight box ``[x, y, w, h]`` (XYWH, pixels) of the foreground; zeros for an empty mask."""
    return [float(v) for v in _coco_mask.toBbox(_coco_rles([rle]))[0]]


def bboxes(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Boxes of many RLEs as an (N, 4) float64 XYWH array."""
    if not rles:
        return np.zeros((0, 4), dtype=np.float64)
    return np.asarray(_coco_mask.toBbox(_coco_rles(rles)), dtype=np.float64).reshape(-1, 4)


def merge(rles: Sequence[Mapping[str, Any]], intersect: bool = False) -> RleDict:
    """Union (or intersection) of RLEs of one size as compressed RLE."""
    if not rles:
        raise RemError("merge needs at least one RLE")
    coco = _coco_rles(rles)
    sizes = {tuple(r["size"]) for r in coco}
    if len(sizes) != 1:
        raise RemError(f"cannot merge RLEs of different sizes {sorted(sizes)}")
    out = coco[0] if len(coco) == 1 else _coco_mask.merge(coco, int(intersect))
    counts = out["counts"]
    return {
        "size": list(out["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def iou(
    dts: Sequence[Mapping[str, Any]],
    gts: Sequence[Mapping[str, Any]],
    iscrowd: Sequence[int | bool] | None = None,
) -> np.ndarray:
    """The (len(dts), len(gts)) IoU matrix, float64, as ``pycocotools.mask.iou``.

    For a crowd ground truth (``iscrowd[j]`` true) the value is |D ∩ G| / |D| instead of
    |D ∩ G| / |D ∪ G|, so a detection inside a crowd region matches it fully. ``iscrowd``
    defaults to all zeros. Every RLE must have the same size.
    """
    crowd = np.zeros(len(gts), dtype=np.uint8) if iscrowd is None else np.asarray(iscrowd)
    if crowd.shape != (len(gts),):
        raise RemError(f"iscrowd has {crowd.size} entries for {len(gts)} ground truths")
    if not dts or not gts:
        return np.zeros((len(dts), len(gts)), dtype=np.float64)
    d, g = _coco_rles(dts), _coco_rles(gts)
    sizes = {tuple(r["size"]) for r in d} | {tuple(r["size"]) for r in g}
    if len(sizes) != 1:
        raise RemError(f"IoU needs masks of one size, got {sorted(sizes)}")
    out = _coco_mask.iou(d, g, crowd.astype(np.uint8).tolist())
    return np.asarray(out, dtype=np.float64).reshape(len(dts), len(gts))
