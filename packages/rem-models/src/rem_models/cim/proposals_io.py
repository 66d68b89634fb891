"""Reading and writing proposal files (:class:`rem_core.schemas.ProposalSet` JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.io import read_json, save_json
from rem_core.schemas import ImageProposals, ProposalSet


def load_proposals(path: str | Path) -> dict[int, ImageProposals]:
    """Proposal records by image id; an invalid file -> RemError naming the first bad field."""
    data = read_json(path)
    try:
        proposal_set = ProposalSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise RemError(err["msg"], path=path, where=where) from None
    return {record.image_id: record for record in proposal_set.images}


def image_proposals(
    image_id: int, masks: np.ndarray, scores: Iterable[float] | None = None
) -> ImageProposals:
    """An :class:`ImageProposals` from (N, H, W) bool masks (compressed RLE)."""
    n, h, w = masks.shape
    score_list = [None] * n if scores is None else [float(s) for s in scores]
    return ImageProposals(
        image_id=image_id,
        height=h,
        width=w,
        proposals=[
            {"segmentation": mask_ops.encode(m), "score": s}
            for m, s in zip(masks, score_list, strict=True)
        ],
    )


def save_proposals(path: str | Path, records: Iterable[ImageProposals], source: str) -> None:
    """Write a proposal file atomically (scores left out where there are none)."""
    proposal_set = ProposalSet(source=source, images=list(records))
    save_json(path, proposal_set.model_dump(mode="json", exclude_none=True))


def proposal_masks(record: ImageProposals) -> np.ndarray:
    """(N, H, W) bool masks of a record."""
    if not record.proposals:
        return np.zeros((0, record.height, record.width), dtype=bool)
    return np.stack(
        [mask_ops.decode(p.segmentation.model_dump()).astype(bool) for p in record.proposals]
    )
