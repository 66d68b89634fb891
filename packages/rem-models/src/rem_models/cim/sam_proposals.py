"""Mask proposals from a promptable SAM-family model in "segment everything" mode.

A grid of point prompts over the image, each answered with SAM's masks, filtered by predicted
IoU and stability and de-duplicated by box NMS (segment-anything's automatic mask generator).
Needs weights: ``sam_vit_{h,l,b}`` checkpoints, read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rem_models.checkpoints import load_torch_file, unwrap_state_dict

if TYPE_CHECKING:
    from segment_anything.modeling import Sam


def load_sam(checkpoint: str | Path, model_type: str = "vit_h") -> Sam:
    """A SAM model (``vit_h``, ``vit_l`` or ``vit_b``) with ``checkpoint``'s weights, eval mode."""
    from segment_anything import sam_model_registry

    sam = sam_model_registry[model_type](checkpoint=None)
    return load_sam_weights(sam, checkpoint)


def load_sam_weights(sam: Sam, checkpoint: str | Path) -> Sam:
    """Load a SAM state dict into ``sam`` (strict) without unpickling arbitrary objects."""
    state = unwrap_state_dict(load_torch_file(checkpoint), checkpoint)
    sam.load_state_dict(state, strict=True)
    return sam.eval()


def sam_everything(
    image: np.ndarray,
    sam: Sam,
    points_per_side: int = 32,
    pred_iou_thresh: float = 0.88,
    stability_score_thresh: float = 0.95,
    box_nms_thresh: float = 0.7,
    min_mask_region_area: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(masks (N, H, W) bool, scores (N,) float32)`` for an (H, W, 3) uint8 RGB image, sorted
    by SAM's predicted IoU (the score), highest first."""
    from segment_anything import SamAutomaticMaskGenerator

    generator = SamAutomaticMaskGenerator(
        sam,
        points_per_side=points_per_side,
        pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_score_thresh,
        box_nms_thresh=box_nms_thresh,
        min_mask_region_area=min_mask_region_area,
    )
    records = generator.generate(image)
    h, w = image.shape[:2]
    if not records:
        return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
    records.sort(key=lambda r: -r["predicted_iou"])
    masks = np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])
    scores = np.asarray([r["predicted_iou"] for r in records], dtype=np.float32)
    return masks, scores
