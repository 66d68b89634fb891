"""Check COCO, LVIS and results files and say precisely what is wrong.

Errors (the file is unusable or would be misread): malformed JSON (line, column), NaN or
Infinity (JSON path), schema violations (JSON path of the field), duplicate ids, annotations
pointing at missing images or categories, polygons of fewer than 3 points or with an odd number
of coordinates, RLE sized unlike its image, negative box sizes, image file names that would
escape the image directory. Warnings count messy-but-legal records: images without annotations,
annotations without iscrowd (LVIS), uncompressed RLE.

    report = validate_file("instances_val2017.json")
    print("\\n".join(report.lines()))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rem_core.io import CocoFile, detect_kind, gc_paused, try_read_json
from rem_core.validate.dataset import unsafe_file_name, validate_dataset
from rem_core.validate.report import Issue, Report
from rem_core.validate.results import validate_results

__all__ = [
    "Issue",
    "Report",
    "unsafe_file_name",
    "validate_data",
    "validate_dataset",
    "validate_file",
    "validate_results",
]


def validate_data(
    data: Any,
    path: str = "<data>",
    kind: str | None = None,
    gt: CocoFile | None = None,
    image_dir: Path | None = None,
) -> Report:
    """Validate parsed JSON; ``kind`` ("coco", "lvis", "results") is guessed when None."""
    kind = kind or detect_kind(data)
    with gc_paused():
        if kind == "results":
            return validate_results(data, path, gt=gt)
        return validate_dataset(data, path, kind=kind, image_dir=image_dir)


def validate_file(
    path: str | Path,
    kind: str | None = None,
    gt: CocoFile | None = None,
    image_dir: Path | None = None,
) -> Report:
    """Read and validate one file. Unreadable files raise :class:`~rem_core.errors.RemError`."""
    data, problems = try_read_json(path)
    if problems:
        report = Report(path=str(path), kind=kind or "json")
        for problem in problems:
            report.error(problem.where, problem.message)
        return report
    return validate_data(data, str(path), kind=kind, gt=gt, image_dir=image_dir)
