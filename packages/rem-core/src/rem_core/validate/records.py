"""Hand-written checks for the hot fields: annotations, detections and their segmentations.

A COCO-train file has 860k annotations with tens of millions of polygon coordinates; building a
pydantic model per annotation would dominate the run time, so these fields are checked here with
cheap tests (``sum()`` over a polygon checks every coordinate is a number, in C) and only a
failing record is examined value by value for a precise message. The rules are those of
:mod:`rem_core.schemas` (ids are JSON integers, ``bbox`` is XYWH with width and height >= 0,
``area`` >= 0, ``iscrowd`` 0 or 1), plus what pycocotools needs to work: polygons of at least
3 points and an even number of coordinates, RLE sized like its image.
"""

from __future__ import annotations

import math
from typing import Any

from rem_core.validate.report import Report, type_name

# Warnings (counted, not failing).
W_UNCOMPRESSED = "uncompressed RLE segmentations (legal; `rem convert --to rle` compresses them)"
W_NO_ISCROWD = "annotations without iscrowd (read as 0)"
W_NO_SEGMENTATION = "annotations without segmentation"
W_NO_AREA = "annotations without area (pycocotools evaluation needs it)"

_RLE_ALPHABET_LOW, _RLE_ALPHABET_HIGH = "0", "o"  # pycocotools' RLE string characters: 48..111


def is_int(value: Any) -> bool:
    """A JSON integer (not a boolean, not 1.0)."""
    return type(value) is int


def is_number(value: Any) -> bool:
    """A finite JSON number for a scalar field (``area``, ``score``); booleans are not."""
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def is_coordinate(value: Any) -> bool:
    """A finite number inside a bbox, polygon or RLE counts list.

    Booleans pass here, as 0 and 1 (what Python's ``sum`` and pycocotools make of them):
    rejecting them would cost a per-coordinate type test on tens of millions of values.
    """
    return isinstance(value, int | float) and math.isfinite(value)


def check_int_field(record: dict, name: str, where: str, report: Report) -> bool:
    """Require ``record[name]`` to be a JSON integer; True when it is."""
    if name not in record:
        report.error(where, f"missing required field {name!r}")
        return False
    value = record[name]
    if not is_int(value):
        report.error(f"{where}.{name}", f"{name} must be an integer, got {_show(value)}")
        return False
    return True


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def check_bbox(bbox: Any, where: str, report: Report) -> None:
    """``bbox``: [x, y, width, height] (XYWH, pixels), finite numbers, width and height >= 0."""
    if type(bbox) is not list or len(bbox) != 4:
        report.error(where, f"bbox must be [x, y, width, height], got {_show(bbox)}")
        return
    try:
        finite = math.isfinite(sum(bbox))
    except TypeError:
        finite = False
    if not finite:
        # (All four can be finite and still overflow the sum; then nothing is wrong here.)
        bad = next((i for i, v in enumerate(bbox) if not is_coordinate(v)), None)
        if bad is not None:
            report.error(
                f"{where}[{bad}]", f"bbox values must be finite numbers, got {_show(bbox[bad])}"
            )
            return
    if bbox[2] < 0 or bbox[3] < 0:
        report.error(where, f"bbox width and height must be >= 0, got {bbox}")


def check_number_field(
    record: dict, name: str, where: str, report: Report, minimum: float | None = None
) -> None:
    """An optional finite number (``area``, ``score``) with an optional lower bound."""
    value = record[name]
    if not is_number(value):
        report.error(f"{where}.{name}", f"{name} must be a finite number, got {_show(value)}")
    elif minimum is not None and value < minimum:
        report.error(f"{where}.{name}", f"{name} must be >= {minimum:g}, got {value}")


def check_polygons(polygons: list, where: str, report: Report) -> None:
    """A list of flat polygons ``[x1, y1, x2, y2, ...]``, each of 3+ points."""
    if not polygons:
        report.error(where, "segmentation is an empty list (no polygons)")
        return
    for k, poly in enumerate(polygons):
        if type(poly) is not list:
            report.error(
                f"{where}[{k}]",
                f"a polygon must be a list of coordinates [x1, y1, x2, y2, ...], got {_show(poly)}",
            )
            continue
        try:
            # One C-level pass: any non-number raises TypeError, any NaN/inf makes it non-finite.
            ok = math.isfinite(sum(poly))
        except TypeError:
            ok = False
        if not ok:
            bad = next((j for j, v in enumerate(poly) if not is_coordinate(v)), None)
            if bad is not None:
                report.error(
                    f"{where}[{k}][{bad}]",
                    f"polygon coordinates must be finite numbers, got {_show(poly[bad])}",
                )
                continue
        n = len(poly)
        if n < 6:
            report.error(
                f"{where}[{k}]",
                f"polygon has {n} coordinates ({n // 2} points); a polygon needs at least 3 points "
                "(6 coordinates)",
            )
        elif n % 2:
            report.error(
                f"{where}[{k}]",
                f"polygon has an odd number of coordinates ({n}); coordinates come in x, y pairs",
            )


def check_rle(
    rle: dict, where: str, report: Report, image_size: tuple[int, int] | None, image_id: Any
) -> None:
    """An RLE object ``{"size": [height, width], "counts": str | list[int]}``.

    ``image_size`` (height, width), when known, must equal ``size``; uncompressed counts must
    cover exactly height * width pixels.
    """
    missing = [k for k in ("size", "counts") if k not in rle]
    if missing:
        report.error(where, f"RLE object is missing {' and '.join(map(repr, missing))}")
        return
    size = rle["size"]
    if type(size) is not list or len(size) != 2 or not all(is_int(v) and v >= 0 for v in size):
        report.error(
            f"{where}.size", f"RLE size must be [height, width] (integers >= 0), got {_show(size)}"
        )
        return
    if image_size is not None and tuple(size) != image_size:
        report.error(
            f"{where}.size",
            f"RLE size {size} does not match image {image_id!r} "
            f"(height {image_size[0]}, width {image_size[1]})",
        )
    counts = rle["counts"]
    if isinstance(counts, str):
        if counts and (min(counts) < _RLE_ALPHABET_LOW or max(counts) > _RLE_ALPHABET_HIGH):
            report.error(
                f"{where}.counts",
                "compressed RLE counts hold characters outside pycocotools' encoding ('0'..'o')",
            )
        return
    if type(counts) is not list:
        report.error(
            f"{where}.counts",
            f"RLE counts must be a string (compressed) or a list of integers, got {_show(counts)}",
        )
        return
    report.warn(W_UNCOMPRESSED)
    try:
        total = sum(counts)
    except TypeError:
        total = None
    # A float anywhere makes the sum a float; a bool is an int subclass and is caught below.
    if type(total) is not int or (counts and min(counts) < 0):
        bad = next((j for j, v in enumerate(counts) if not (isinstance(v, int) and v >= 0)), 0)
        report.error(
            f"{where}.counts[{bad}]",
            f"RLE counts must be integers >= 0, got {_show(counts[bad])}",
        )
        return
    pixels = size[0] * size[1]
    if total != pixels:
        report.error(
            f"{where}.counts",
            f"uncompressed RLE counts add up to {total} pixels; size {size} has {pixels}",
        )


def check_segmentation(
    segmentation: Any,
    where: str,
    report: Report,
    image_size: tuple[int, int] | None,
    image_id: Any,
) -> None:
    """Polygons (a list of flat lists) or an RLE object; see :func:`check_polygons`/`check_rle`."""
    if type(segmentation) is list:
        check_polygons(segmentation, where, report)
    elif type(segmentation) is dict:
        check_rle(segmentation, where, report, image_size, image_id)
    else:
        report.error(
            where,
            "segmentation must be polygons [[x1, y1, ...], ...] or an RLE object "
            f'{{"size": [h, w], "counts": ...}}, got {_show(segmentation)}',
        )


_MISSING = object()
_INF = math.inf


class AnnotationChecker:
    """Checks annotations of one dataset against its image and category tables.

    ``check`` first tries a fast path that accepts a well-formed annotation with as few Python
    operations as possible; anything unusual goes to the careful path, which names the field.
    """

    def __init__(
        self,
        report: Report,
        image_sizes: dict[Any, tuple[int, int] | None],
        category_ids: set[Any],
    ):
        self.report = report
        self.image_sizes = image_sizes
        self.category_ids = category_ids
        self.seen_ids: dict[Any, int] = {}
        self.images_with_annotations: set[Any] = set()
        # Warnings counted on the fast path, added to the report by finish().
        self.no_iscrowd = self.no_area = self.no_segmentation = self.uncompressed = 0

    def check(self, i: int, ann: Any) -> None:
        try:
            if type(ann) is dict and self._fast(i, ann):
                return
        except TypeError:  # e.g. comparing a string area with 0
            pass
        self._careful(i, ann)

    def finish(self) -> None:
        """Add the warning counts gathered on the fast path to the report."""
        self.report.warn(W_NO_ISCROWD, self.no_iscrowd)
        self.report.warn(W_NO_AREA, self.no_area)
        self.report.warn(W_NO_SEGMENTATION, self.no_segmentation)
        self.report.warn(W_UNCOMPRESSED, self.uncompressed)
        self.no_iscrowd = self.no_area = self.no_segmentation = self.uncompressed = 0

    def _fast(self, i: int, ann: dict) -> bool:
        """True when ``ann`` is certainly valid (and its warnings counted); False: look closer."""
        get = ann.get
        ann_id, image_id, category_id = get("id"), get("image_id"), get("category_id")
        if type(ann_id) is not int or type(image_id) is not int or type(category_id) is not int:
            return False
        size = self.image_sizes.get(image_id)
        if size is None or category_id not in self.category_ids:
            return False
        if self.seen_ids.setdefault(ann_id, i) != i:
            return False
        crowd = get("iscrowd", _MISSING)
        if crowd is _MISSING:
            no_iscrowd = 1
        elif type(crowd) is int and (crowd == 0 or crowd == 1):
            no_iscrowd = 0
        else:
            return False
        bbox = get("bbox")
        if bbox is not None and not (
            type(bbox) is list
            and len(bbox) == 4
            and -_INF < sum(bbox) < _INF
            and bbox[2] >= 0
            and bbox[3] >= 0
        ):
            return False
        area = get("area")
        if area is not None and not (type(area) is not bool and 0 <= area < _INF):
            return False
        segmentation = get("segmentation")
        uncompressed = 0
        if type(segmentation) is list:
            if not segmentation:
                return False
            for poly in segmentation:
                if type(poly) is not list or len(poly) < 6 or len(poly) & 1:
                    return False
                if not -_INF < sum(poly) < _INF:
                    return False
        elif type(segmentation) is dict:
            rle_size = segmentation.get("size")
            if len(segmentation) != 2 or rle_size != [size[0], size[1]]:
                return False
            if type(rle_size[0]) is not int or type(rle_size[1]) is not int:  # not True for 1
                return False
            counts = segmentation.get("counts")
            if type(counts) is str:
                if counts and (min(counts) < _RLE_ALPHABET_LOW or max(counts) > _RLE_ALPHABET_HIGH):
                    return False
            elif type(counts) is list:
                total = sum(counts)
                if type(total) is not int or total != size[0] * size[1]:
                    return False
                if counts and min(counts) < 0:
                    return False
                uncompressed = 1
            else:
                return False
        elif segmentation is not None:
            return False
        # Every check passed: record what the careful path would have recorded.
        self.images_with_annotations.add(image_id)
        self.no_iscrowd += no_iscrowd
        self.no_area += area is None
        self.no_segmentation += segmentation is None
        self.uncompressed += uncompressed
        return True

    def _careful(self, i: int, ann: Any) -> None:
        report = self.report
        where = f"annotations[{i}]"
        if type(ann) is not dict:
            report.error(where, f"an annotation must be an object, got {_show(ann)}")
            return
        if check_int_field(ann, "id", where, report):
            first = self.seen_ids.setdefault(ann["id"], i)
            if first != i:
                report.error(
                    f"{where}.id",
                    f"duplicate annotation id {ann['id']} (first at annotations[{first}])",
                )
        image_size = None
        image_id = ann.get("image_id")
        if check_int_field(ann, "image_id", where, report):
            self.images_with_annotations.add(image_id)
            if image_id not in self.image_sizes:
                report.error(f"{where}.image_id", f"image {image_id} is not in images")
            else:
                image_size = self.image_sizes[image_id]
        if check_int_field(ann, "category_id", where, report) and (
            ann["category_id"] not in self.category_ids
        ):
            report.error(
                f"{where}.category_id", f"category {ann['category_id']} is not in categories"
            )
        if "iscrowd" not in ann:
            report.warn(W_NO_ISCROWD)
        elif not is_int(ann["iscrowd"]) or ann["iscrowd"] not in (0, 1):
            report.error(f"{where}.iscrowd", f"iscrowd must be 0 or 1, got {_show(ann['iscrowd'])}")
        if ann.get("bbox") is not None:
            check_bbox(ann["bbox"], f"{where}.bbox", report)
        if ann.get("area") is not None:
            check_number_field(ann, "area", where, report, minimum=0)
        else:
            report.warn(W_NO_AREA)
        segmentation = ann.get("segmentation")
        if segmentation is None:
            report.warn(W_NO_SEGMENTATION)
        else:
            check_segmentation(segmentation, f"{where}.segmentation", report, image_size, image_id)
