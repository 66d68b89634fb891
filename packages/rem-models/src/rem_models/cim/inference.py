"""CIM inference: branch-averaged scores with multi-scale / flip TTA, per-class box NMS, top-k.

Each detection is a proposal: its mask is the proposal's mask, its box the proposal's box.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms

from rem_core import masks as mask_ops
from rem_models.cim.data import CimSample
from rem_models.cim.model import CimModel


def resize_long_side(image: np.ndarray, scale: int) -> tuple[np.ndarray, float]:
    """Resize (H, W, 3) so its long side is ``scale``; returns the image and the factor.

    CIM's "scales" are long sides (its ``get_target_scale`` divides by the larger image side,
    unlike Fast R-CNN's short-side rule it was forked from).
    """
    h, w = image.shape[:2]
    f = scale / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), f


@torch.no_grad()
def score_proposals(
    model: CimModel,
    sample: CimSample,
    scales: Sequence[int] | None = None,
    flip: bool = False,
) -> np.ndarray:
    """(N, C) proposal scores averaged over test scales (long side) and horizontal flips.

    ``scales=None`` scores the image at its own size.
    """
    device = next(model.parameters()).device
    runs = []
    for scale in scales or [None]:
        if scale is None:
            img, f = sample.image, 1.0
        else:
            img, f = resize_long_side(sample.image, int(scale))
        width = img.shape[1]
        for flipped in (False, True) if flip else (False,):
            boxes = sample.boxes * f
            crops = sample.crops
            if flipped:
                img_run = img[:, ::-1]
                boxes = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width, 0, width, 0]
                crops = crops[:, :, ::-1]
            else:
                img_run = img
            out = model(
                torch.as_tensor(np.ascontiguousarray(img_run), device=device)
                .permute(2, 0, 1)
                .float(),
                torch.as_tensor(np.asarray(boxes, dtype=np.float32), device=device),
                torch.as_tensor(np.ascontiguousarray(crops), device=device),
            )
            runs.append(out.scores().float().cpu().numpy())
    return np.mean(runs, axis=0)


def select_detections(
    scores: np.ndarray,
    boxes: np.ndarray,
    nms_thr: float = 0.3,
    max_dets: int = 100,
    min_score: float = 1e-4,
) -> list[tuple[int, int, float]]:
    """``(proposal index, class, score)`` after per-class box NMS at ``nms_thr`` and top
    ``max_dets`` by score; ``scores`` (N, C), ``boxes`` (N, 4) XYXY."""
    idx, cls = np.nonzero(scores >= min_score)
    if idx.size == 0:
        return []
    s = torch.as_tensor(scores[idx, cls], dtype=torch.float32)
    b = torch.as_tensor(boxes[idx], dtype=torch.float32)
    keep = batched_nms(b, s, torch.as_tensor(cls), nms_thr)[:max_dets].numpy()
    return [(int(idx[k]), int(cls[k]), float(s[k])) for k in keep]


def detections_to_coco(
    sample: CimSample,
    detections: list[tuple[int, int, float]],
    category_ids: Sequence[int],
) -> list[dict]:
    """COCO result records (RLE segmentation, XYWH bbox) for one image's detections;
    ``category_ids[c]`` maps class index c to the dataset's category id."""
    records = []
    for i, c, score in detections:
        x1, y1, x2, y2 = (float(v) for v in sample.boxes[i])
        records.append(
            {
                "image_id": sample.image_id,
                "category_id": int(category_ids[c]),
                "score": score,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "segmentation": mask_ops.encode(sample.masks[i]),
            }
        )
    return records


def predict_sample(
    model: CimModel,
    sample: CimSample,
    category_ids: Sequence[int],
    scales: Sequence[int] | None = None,
    flip: bool = False,
    nms_thr: float = 0.3,
    max_dets: int = 100,
) -> list[dict]:
    """COCO result records of one image (see the module docstring)."""
    scores = score_proposals(model, sample, scales, flip)
    return detections_to_coco(
        sample, select_detections(scores, sample.boxes, nms_thr, max_dets), category_ids
    )
