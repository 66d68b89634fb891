"""What a synthetic sample holds and how far its coarse annotations are from the exact ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from rem_core import masks


@dataclass(frozen=True)
class SampleSummary:
    """Counts of a sample and the mean coarse-vs-exact mask IoU and Boundary IoU (non-crowd)."""

    images: int
    images_without_annotations: int
    instances: int
    crowd: int
    categories: int
    predictions: int
    mean_mask_iou: float
    mean_boundary_iou: float


def pairwise_mask_and_boundary_iou(
    exact: dict, coarse: dict, dilation_ratio: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Mask IoU and Boundary IoU of each non-crowd annotation of ``coarse`` against the exact
    annotation with the same id, as two (N,) arrays (N = matched non-crowd annotations)."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in exact["images"]}
    by_id = {a["id"]: a for a in exact["annotations"]}
    mask_iou, boundary_iou = [], []
    for ann in coarse["annotations"]:
        ref = by_id.get(ann["id"])
        if ref is None or ref.get("iscrowd", 0) or ann.get("iscrowd", 0):
            continue
        h, w = sizes[ref["image_id"]]
        a = masks.to_rle(ann["segmentation"], h, w)
        b = masks.to_rle(ref["segmentation"], h, w)
        mask_iou.append(masks.iou([a], [b])[0, 0])
        ba, bb = masks.boundary_rle(a, dilation_ratio), masks.boundary_rle(b, dilation_ratio)
        boundary_iou.append(masks.iou([ba], [bb])[0, 0])
    return np.asarray(mask_iou, dtype=np.float64), np.asarray(boundary_iou, dtype=np.float64)


def summarize(exact_path: Path, coarse_path: Path, predictions_path: Path) -> SampleSummary:
    """Read the three files of a sample and summarise them."""
    exact = orjson.loads(Path(exact_path).read_bytes())
    coarse = orjson.loads(Path(coarse_path).read_bytes())
    predictions = orjson.loads(Path(predictions_path).read_bytes())
    annotated = {a["image_id"] for a in exact["annotations"]}
    mask_iou, boundary_iou = pairwise_mask_and_boundary_iou(exact, coarse)
    return SampleSummary(
        images=len(exact["images"]),
        images_without_annotations=sum(img["id"] not in annotated for img in exact["images"]),
        instances=len(exact["annotations"]),
        crowd=sum(a.get("iscrowd", 0) for a in exact["annotations"]),
        categories=len(exact["categories"]),
        predictions=len(predictions),
        mean_mask_iou=float(mask_iou.mean()) if mask_iou.size else float("nan"),
        mean_boundary_iou=float(boundary_iou.mean()) if boundary_iou.size else float("nan"),
    )
