"""Validation of a COCO / LVIS / COCO-ReM instances file held as plain dicts."""

from __future__ import annotations

import ntpath
import posixpath
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rem_core.schemas import Category, Image, Info, License
from rem_core.validate.records import AnnotationChecker, is_int
from rem_core.validate.report import Report, type_name

W_NO_ANNOTATIONS = "images without annotations"


def unsafe_file_name(name: str) -> str | None:
    """Why ``name`` would escape an image directory when joined to it, or None if it is safe.

    Both separators count: a file made on Windows may be read on Linux and vice versa.
    """
    if not name:
        return "is empty"
    if posixpath.isabs(name) or ntpath.isabs(name) or ntpath.splitdrive(name)[0]:
        return "is an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "contains a '..' component"
    return None


def _check_model(
    model: type[BaseModel], record: Any, where: str, report: Report
) -> dict[str, Any] | None:
    """Validate one small record with its schema (strict: JSON integers stay integers)."""
    if type(record) is not dict:
        report.error(where, f"expected an object, got {type_name(record)}")
        return None
    try:
        model.model_validate(record, strict=True)
    except ValidationError as exc:
        report.pydantic_errors(where, exc)
        return None
    return record


def _section(data: dict, key: str, report: Report, required: bool) -> list:
    if key not in data:
        if required:
            report.error(key, f"missing the {key!r} list")
        return []
    value = data[key]
    if type(value) is not list:
        report.error(key, f"{key} must be a list, got {type_name(value)}")
        return []
    return value


def _duplicate(report: Report, seen: dict[Any, int], key: Any, section: str, i: int) -> None:
    first = seen.setdefault(key, i)
    if first != i:
        report.error(f"{section}[{i}].id", f"duplicate id {key!r} (first at {section}[{first}])")


def validate_dataset(
    data: Any, path: str = "<data>", kind: str | None = None, image_dir: Path | None = None
) -> Report:
    """Check a parsed instances file; see ``rem validate --help`` for the list of checks."""
    report = Report(path=str(path), kind=kind or "coco")
    if type(data) is not dict:
        report.error(
            "(root)",
            f"an instances file is a JSON object with images, annotations and categories, "
            f"got {type_name(data)}",
        )
        return report

    if data.get("info") is not None:
        _check_model(Info, data["info"], "info", report)
    licenses = data.get("licenses")
    if isinstance(licenses, list):
        for i, lic in enumerate(licenses):
            _check_model(License, lic, f"licenses[{i}]", report)
    elif licenses is not None:
        report.error("licenses", f"licenses must be a list, got {type_name(licenses)}")

    categories = _section(data, "categories", report, required=True)
    seen: dict[Any, int] = {}
    for i, cat in enumerate(categories):
        if _check_model(Category, cat, f"categories[{i}]", report) is not None:
            _duplicate(report, seen, cat["id"], "categories", i)
    category_ids = set(seen)

    images = _section(data, "images", report, required=True)
    image_sizes: dict[Any, tuple[int, int] | None] = {}
    seen = {}
    root = image_dir.resolve() if image_dir is not None else None
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if _check_model(Image, img, where, report) is None:
            # Still register a usable id so its annotations are not all reported as orphans.
            if type(img) is dict and is_int(img.get("id")):
                image_sizes.setdefault(img["id"], None)
            continue
        _duplicate(report, seen, img["id"], "images", i)
        image_sizes.setdefault(img["id"], (img["height"], img["width"]))
        name = img.get("file_name")
        if name is not None:
            why = unsafe_file_name(name)
            if why is not None:
                report.error(
                    f"{where}.file_name",
                    f"{name!r} {why}; it would escape the image directory",
                )
            elif root is not None:
                target = (root / name).resolve()
                if not target.is_relative_to(root):
                    report.error(
                        f"{where}.file_name",
                        f"{name!r} resolves outside the image directory {root} (a symlink?)",
                    )
                elif not target.is_file():
                    report.error(f"{where}.file_name", f"{name!r} not found in {image_dir}")
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            for j, cid in enumerate(img.get(key) or ()):
                if cid not in category_ids:
                    report.error(f"{where}.{key}[{j}]", f"category {cid} is not in categories")

    annotations = _section(data, "annotations", report, required=False)
    checker = AnnotationChecker(report, image_sizes, category_ids)
    for i, ann in enumerate(annotations):
        checker.check(i, ann)
    checker.finish()

    report.warn(W_NO_ANNOTATIONS, len(image_sizes.keys() - checker.images_with_annotations))
    report.counts = {
        "images": len(images),
        "annotations": len(annotations),
        "categories": len(categories),
    }
    return report
