"""One training/inference image for CIM: its proposals and everything derived from them once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from rem_models.cim.geometry import containment_matrix, mask_boxes, mask_iou_matrix
from rem_models.cim.pcl import PeakClusters, peak_clusters
from rem_models.cim.pseudo_labels import big_proposals


def mask_crops(masks: np.ndarray, boxes: np.ndarray, size: int = 7) -> np.ndarray:
    """(N, size, size) float32: each (H, W) mask cut to its XYXY box and area-resized."""
    crops = np.zeros((len(masks), size, size), dtype=np.float32)
    for i, (m, box) in enumerate(zip(masks, boxes, strict=True)):
        x1, y1, x2, y2 = (round(v) for v in box)
        if x2 > x1 and y2 > y1:
            patch = m[y1:y2, x1:x2].astype(np.float32)
            crops[i] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return crops


@dataclass
class CimSample:
    """An image with its proposals. ``image`` (H, W, 3) uint8 RGB; ``masks`` (N, H, W) bool;
    ``boxes`` (N, 4) XYXY; ``crops`` (N, s, s); ``iou``/``asy`` (N, N); ``big`` (N,);
    ``labels`` (C,) bool image-level classes; ``clusters`` from peaks when peaks are given."""

    image_id: int
    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray
    iou: np.ndarray
    asy: np.ndarray
    big: np.ndarray
    labels: np.ndarray
    clusters: PeakClusters | None = None


def prepare_sample(
    image_id: int,
    image: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    peaks: Sequence[tuple[float, float, int]] | None = None,
    roi_size: int = 7,
) -> CimSample:
    """Drop empty proposals and precompute boxes, crops and the pairwise matrices. ``peaks``
    (x, y, class), weakest first, give PCL clusters; ``[]`` makes every proposal background,
    ``None`` means no peak information (no PCL term)."""
    masks = np.asarray(masks, dtype=bool)
    masks = masks[masks.reshape(len(masks), -1).any(1)] if len(masks) else masks
    boxes = mask_boxes(masks)
    asy = containment_matrix(masks)
    return CimSample(
        image_id=image_id,
        image=np.ascontiguousarray(image),
        masks=masks,
        boxes=boxes,
        crops=mask_crops(masks, boxes, roi_size),
        iou=mask_iou_matrix(masks),
        asy=asy,
        big=big_proposals(asy),
        labels=np.asarray(labels, dtype=bool),
        clusters=peak_clusters(masks, peaks) if peaks is not None else None,
    )
