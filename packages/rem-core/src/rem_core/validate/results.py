"""Validation of a COCO results file (a JSON list of scored detections)."""

from __future__ import annotations

from typing import Any

from rem_core.io import CocoFile
from rem_core.validate.records import (
    check_bbox,
    check_int_field,
    check_number_field,
    check_segmentation,
)
from rem_core.validate.report import Report, type_name


def validate_results(data: Any, path: str = "<data>", gt: CocoFile | None = None) -> Report:
    """Check detections: ids, a finite score, a box and/or a mask; against ``gt`` when given.

    With ``gt``: every image must be a GT image, every category a GT category (a common slip is
    writing contiguous 0..79 class indices instead of COCO's ids), and an RLE's size must be its
    image's (height, width).
    """
    report = Report(path=str(path), kind="results")
    if type(data) is not list:
        hint = ""
        if type(data) is dict and "annotations" in data:
            hint = " (this looks like an instances file; use --kind coco)"
        report.error(
            "(root)", f"a results file is a JSON list of detections, got {type_name(data)}{hint}"
        )
        return report
    sizes: dict[Any, tuple[int, int]] | None = None
    categories: set[Any] | None = None
    if gt is not None:
        sizes = {}
        for img in gt.images:
            if isinstance(img, dict) and "id" in img:
                h, w = img.get("height"), img.get("width")
                sizes[img["id"]] = (h, w) if type(h) is int and type(w) is int else None
        categories = {c.get("id") for c in gt.categories if isinstance(c, dict)}
    images: set[Any] = set()
    for i, det in enumerate(data):
        where = f"[{i}]"
        if type(det) is not dict:
            report.error(where, f"a detection must be an object, got {type_name(det)}")
            continue
        image_size = None
        if check_int_field(det, "image_id", where, report):
            images.add(det["image_id"])
            if sizes is not None:
                if det["image_id"] not in sizes:
                    report.error(
                        f"{where}.image_id", f"image {det['image_id']} is not in {gt.path}"
                    )
                else:
                    image_size = sizes[det["image_id"]]
        if (
            check_int_field(det, "category_id", where, report)
            and categories is not None
            and det["category_id"] not in categories
        ):
            report.error(
                f"{where}.category_id", f"category {det['category_id']} is not in {gt.path}"
            )
        if "score" not in det:
            report.error(where, "missing required field 'score'")
        else:
            check_number_field(det, "score", where, report)
        bbox, segmentation = det.get("bbox"), det.get("segmentation")
        if bbox is None and segmentation is None:
            report.error(where, "a detection needs a bbox or a segmentation")
        if bbox is not None:
            check_bbox(bbox, f"{where}.bbox", report)
        if segmentation is not None:
            check_segmentation(
                segmentation, f"{where}.segmentation", report, image_size, det.get("image_id")
            )
    report.counts = {"detections": len(data), "images": len(images)}
    return report
