"""The annotation checker's fast path never accepts what the careful path would reject."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from rem_core.validate import validate_data
from rem_core.validate.records import AnnotationChecker
from rem_core.validate.report import Report

MISSING = object()
IMAGE_SIZES = {
    1: (4, 5),
    2: (40, 60),
    3: None,
    4: (1, 5),
}  # image 3: a record that failed its own checks
CATEGORIES = {1, 2}

FIELD_VALUES = {
    "id": [1, 2, "1", 1.0, True, None, [1], MISSING],
    "image_id": [1, 2, 3, 4, 99, "1", None, MISSING],
    "category_id": [1, 2, 7, 1.5, MISSING],
    "iscrowd": [0, 1, 2, True, "0", 0.0, None, MISSING],
    "bbox": [
        [1, 2, 3, 4],
        [1.5, 2, 0, 0],
        [1, 2, -3, 4],
        [1, 2, 3],
        [1, 2, "3", 4],
        [1e308, 1e308, 0, 0],
        [1, 2, 3, True],
        "x",
        None,
        MISSING,
    ],
    "area": [4, 0.5, 0, -1, "x", True, float("nan"), None, MISSING],
    "segmentation": [
        [[1, 1, 4, 1, 4, 3]],
        [[1, 1, 4, 1, 4, 3], [0.5, 0.5, 2, 0.5, 2, 2, 0.5, 2]],
        [[1, 1, 5, 5]],
        [[1, 1, 4, 1, 4, 3, 9]],
        [],
        [[1, 1, 4, 1, 4, "y"]],
        [[1e308, 1e308, 1e308, 0, 0, 0]],
        [[1, 1, 4, 1, 4, float("inf")]],
        [(1, 1, 4, 1, 4, 3)],
        {"size": [4, 5], "counts": [5, 2, 2, 2, 9]},
        {"size": [40, 60], "counts": [2400]},
        {"size": [4, 5], "counts": [5, 2, 2, 2, 8]},
        {"size": [4, 5], "counts": [5.0, 15]},
        {"size": [4, 5], "counts": [25, -5]},
        {"size": [4, 5], "counts": [True, 19]},
        {"size": [4, 5], "counts": "52207"},
        {"size": [4, 5], "counts": "52207~"},
        {"size": [4, 5], "counts": 7},
        {"size": [4, 5], "counts": [5, 2, 2, 2, 9], "extra": 1},
        {"size": [4], "counts": [20]},
        {"size": [True, 5], "counts": [5]},
        {"size": [1, 5], "counts": [5]},
        {"counts": [20]},
        "polygon",
        None,
        MISSING,
    ],
}

annotations = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in FIELD_VALUES.items()}).map(
    lambda fields: {k: v for k, v in fields.items() if v is not MISSING}
)


def _run(anns: list, fast: bool) -> Report:
    report = Report(path="x")
    checker = AnnotationChecker(report, IMAGE_SIZES, CATEGORIES)
    if not fast:
        checker._fast = lambda i, ann: False
    for i, ann in enumerate(anns):
        checker.check(i, ann)
    checker.finish()
    return report


@settings(max_examples=600, deadline=None)
@given(anns=st.lists(annotations | st.sampled_from([None, 3, "ann", [1]]), min_size=1, max_size=4))
def test_fast_path_agrees_with_the_careful_path(anns):
    fast, careful = _run(anns, fast=True), _run(anns, fast=False)
    assert fast.errors == careful.errors
    assert fast.warnings == careful.warnings


BASES = [
    {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [1, 1, 2, 2],
        "area": 4,
        "segmentation": [[1, 1, 4, 1, 4, 3]],
    },
    {
        "id": 1,
        "image_id": 4,
        "category_id": 2,
        "iscrowd": 1,
        "segmentation": {"size": [1, 5], "counts": [5]},
    },
]


def test_every_single_field_change_agrees():
    """Exhaustive: each listed value of each field, in an otherwise valid annotation."""
    for base in BASES:
        for field, values in FIELD_VALUES.items():
            for value in values:
                ann = {k: v for k, v in base.items() if k != field}
                if value is not MISSING:
                    ann[field] = value
                fast, careful = _run([ann], fast=True), _run([ann], fast=False)
                assert (fast.errors, fast.warnings) == (careful.errors, careful.warnings), ann


def test_a_valid_annotation_takes_the_fast_path():
    checker = AnnotationChecker(Report(path="x"), IMAGE_SIZES, CATEGORIES)
    ann = {
        "id": 1,
        "image_id": 2,
        "category_id": 1,
        "bbox": [1, 2, 3, 4],
        "area": 4.0,
        "iscrowd": 0,
        "segmentation": [[1, 1, 4, 1, 4, 3]],
    }
    assert checker._fast(0, ann) is True
    rle = {
        "id": 2,
        "image_id": 1,
        "category_id": 2,
        "iscrowd": 1,
        "segmentation": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]},
    }
    assert checker._fast(1, rle) is True
    checker.finish()
    assert checker.report.ok and sum(checker.report.warnings.values()) == 2  # no area; uncompressed


def test_validation_scales_linearly():
    """50k annotations (about 1/17 of COCO train) validate in well under the load time."""
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 480, "width": 640} for i in range(5000)]
    poly = [float(v) for v in range(40)]
    anns = [
        {
            "id": k,
            "image_id": k % 5000,
            "category_id": 1 + k % 3,
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "area": 12.0,
            "iscrowd": 0,
            "segmentation": [poly],
        }
        for k in range(50_000)
    ]
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)],
    }
    start = time.process_time()
    report = validate_data(data, "x")
    elapsed = time.process_time() - start
    assert report.ok and report.counts["annotations"] == 50_000
    # About 3 us per annotation on a laptop core; 5 s is a loose bound for a busy CI machine.
    assert elapsed < 5.0
