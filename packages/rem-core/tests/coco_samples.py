"""Small hand-built COCO / LVIS / results files for the io, validate, info and convert tests."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
VAL30 = SHARED / "data" / "coco-val2017-30" / "instances_val2017_30.json"


def val30() -> Path:
    """The 30-image COCO val2017 file, or skip."""
    if not VAL30.exists():
        pytest.skip(f"../shared test data not found: {VAL30}")
    return VAL30


# A 4x5 (H, W) mask: pixels (x=1..2, y=1..2) set -> column-major runs 5 zeros, 2 ones, 2 zeros,
# 2 ones, 9 zeros = 20 pixels.
SMALL_RLE_COUNTS = [5, 2, 2, 2, 9]

BASE = {
    "info": {"description": "hand-built", "year": 2024},
    "licenses": [{"id": 1, "name": "CC"}],
    "images": [
        {"id": 1, "file_name": "a.jpg", "height": 4, "width": 5},
        {"id": 2, "file_name": "sub/b.jpg", "height": 40, "width": 60, "source": "extra"},
        {"id": 3, "file_name": "c.jpg", "height": 10, "width": 10},
    ],
    "annotations": [
        {
            "id": 10,
            "image_id": 2,
            "category_id": 1,
            "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0, 25.5, 10.0, 25.5]],
            "area": 310.0,
            "bbox": [10.0, 10.0, 20.0, 15.5],
            "iscrowd": 0,
            "source": "coco-rem",
            "source_id": 77,
        },
        {
            "id": 11,
            "image_id": 1,
            "category_id": 2,
            "segmentation": {"size": [4, 5], "counts": SMALL_RLE_COUNTS},
            "area": 4,
            "bbox": [1, 1, 2, 2],
            "iscrowd": 1,
        },
        {
            "id": 12,
            "image_id": 2,
            "category_id": 2,
            "segmentation": [[1, 1, 8, 1, 8, 9], [20.25, 30, 28, 30, 28, 38, 20, 38]],
            "area": 92.5,
            "bbox": [1, 1, 27, 37],
            "iscrowd": 0,
        },
    ],
    "categories": [
        {"id": 1, "name": "person", "supercategory": "human"},
        {"id": 2, "name": "dog", "supercategory": "animal"},
        {"id": 5, "name": "cat", "supercategory": "animal"},
    ],
    "extra_top_level": {"kept": True},
}


def dataset() -> dict:
    """A fresh deep copy of the small valid dataset (image 3 has no annotation)."""
    return copy.deepcopy(BASE)


def lvis_dataset() -> dict:
    """The small dataset in LVIS form: frequency, neg_category_ids, no iscrowd."""
    data = dataset()
    for cat, freq in zip(data["categories"], "fcr"):
        cat["frequency"] = freq
        cat["synonyms"] = [cat["name"]]
    for img in data["images"]:
        img["neg_category_ids"] = [5]
        img["not_exhaustive_category_ids"] = []
    for ann in data["annotations"]:
        del ann["iscrowd"]
    return data


def write(path: Path, data: object) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path
