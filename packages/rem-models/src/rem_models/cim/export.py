"""CIM+ step 1: turn CIM predictions into a COCO training file for a fully supervised model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rem_core import masks as mask_ops
from rem_core.io import CocoFile, save_json

PSEUDO_LABEL_MIN_SCORE = 0.3


def pseudo_label_dataset(
    predictions: Iterable[dict], coco: CocoFile, min_score: float = PSEUDO_LABEL_MIN_SCORE
) -> dict:
    """A COCO instances dict: ``coco``'s images and categories, and one annotation per prediction
    (RLE segmentation) with ``score >= min_score``; the score is kept on the annotation.

    Predictions on images or categories ``coco`` does not have are dropped.
    """
    annotations = []
    for det in predictions:
        if det["score"] < min_score:
            continue
        if det["image_id"] not in coco.imgs or det["category_id"] not in coco.cats:
            continue
        rle = det["segmentation"]
        area = mask_ops.area(rle)
        if area == 0:
            continue
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": det["image_id"],
                "category_id": det["category_id"],
                "segmentation": rle,
                "area": float(area),
                "bbox": mask_ops.bbox(rle),
                "iscrowd": 0,
                "score": float(det["score"]),
            }
        )
    return {
        "info": {"description": f"CIM pseudo-labels (score >= {min_score})"},
        "images": [coco.imgs[i] for i in sorted(coco.imgs)],
        "categories": [coco.cats[c] for c in sorted(coco.cats)],
        "annotations": annotations,
    }


def export_pseudo_labels(
    predictions: Iterable[dict],
    coco: CocoFile,
    out: str | Path,
    min_score: float = PSEUDO_LABEL_MIN_SCORE,
) -> int:
    """Write :func:`pseudo_label_dataset` to ``out`` atomically; returns the annotation count."""
    dataset = pseudo_label_dataset(predictions, coco, min_score)
    save_json(out, dataset)
    return len(dataset["annotations"])
