"""COB proposals in the CIM/PCL pickle format, read without running code from the file.

The file is ``{"boxes": [(N, 4) XYXY per image], "scores": [(N,) per image], "masks": [(N, M, M)
mask crops in [0, 1] per image], "indexes" (or "ids"): [image id per image]}``: masks are stored
as crops of each box, not whole images. :func:`cob_to_proposals` pastes them back into whole-image
masks so COB feeds the same :class:`rem_core.schemas.ImageProposals` as any other source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rem_core.errors import RemError
from rem_core.io import CocoFile
from rem_core.schemas import ImageProposals
from rem_models.cim.proposals_io import image_proposals
from rem_models.safe_pickle import load_pickle


@dataclass(frozen=True)
class CobRecord:
    """One image's COB proposals: ``boxes`` (N, 4) XYXY float32, ``scores`` (N,) float32 or None,
    ``crops`` (N, M, M) float32 mask crops of the boxes."""

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray | None
    crops: np.ndarray


def read_cob_pickle(path: str | Path) -> list[CobRecord]:
    """Records of a COB pickle (numpy-only restricted unpickler; anything else -> RemError)."""
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise RemError(f"expected a dict, found {type(data).__name__}", path=path)
    id_field = "indexes" if "indexes" in data else "ids"
    for key in ("boxes", "masks", id_field):
        if key not in data:
            raise RemError(f"missing key {key!r} (keys: {sorted(map(str, data))})", path=path)
    ids, boxes, crops = data[id_field], data["boxes"], data["masks"]
    scores = data.get("scores")
    if not len(ids) == len(boxes) == len(crops) or (scores is not None and len(scores) != len(ids)):
        raise RemError(f"boxes, masks, scores and {id_field} differ in length", path=path)
    records = []
    for i, image_id in enumerate(ids):
        b = np.asarray(boxes[i], dtype=np.float32).reshape(-1, 4)
        c = np.asarray(crops[i], dtype=np.float32)
        if c.ndim != 3 or len(c) != len(b):
            raise RemError(
                f"{len(b)} boxes but masks of shape {list(c.shape)}",
                path=path,
                where=f"masks[{i}]",
            )
        s = None if scores is None else np.asarray(scores[i], dtype=np.float32).reshape(-1)
        if s is not None and len(s) != len(b):
            raise RemError(f"{len(b)} boxes but {len(s)} scores", path=path, where=f"scores[{i}]")
        records.append(CobRecord(int(image_id), b, s, c))
    return records


def paste_crop(crop: np.ndarray, box: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the (M, M) crop resized (bilinear) onto its XYXY box, thresholded at 0.5.

    The box is rounded to whole pixels and clipped to the image.
    """
    out = np.zeros((height, width), dtype=bool)
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if bw <= 0 or bh <= 0:
        return out
    resized = cv2.resize(crop.astype(np.float32), (bw, bh), interpolation=cv2.INTER_LINEAR)
    ox1, oy1 = max(x1, 0), max(y1, 0)
    ox2, oy2 = min(x2, width), min(y2, height)
    if ox2 > ox1 and oy2 > oy1:
        out[oy1:oy2, ox1:ox2] = resized[oy1 - y1 : oy2 - y1, ox1 - x1 : ox2 - x1] >= 0.5
    return out


def cob_to_proposals(records: list[CobRecord], coco: CocoFile) -> list[ImageProposals]:
    """Whole-image proposals for the records whose image is in ``coco`` (sizes come from it);
    proposals that paste to an empty mask are dropped."""
    out = []
    for record in records:
        image = coco.imgs.get(record.image_id)
        if image is None:
            continue
        h, w = image["height"], image["width"]
        masks = (
            np.stack(
                [paste_crop(c, b, h, w) for c, b in zip(record.crops, record.boxes, strict=True)]
            )
            if len(record.boxes)
            else np.zeros((0, h, w), dtype=bool)
        )
        keep = masks.reshape(len(masks), h * w).any(1)
        scores = None if record.scores is None else record.scores[keep]
        out.append(image_proposals(record.image_id, masks[keep], scores))
    return out
