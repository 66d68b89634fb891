"""The mask-proposal schema: round trips, size checks against the image, unique image ids."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from rem_core import masks
from rem_core.schemas import ImageProposals, Proposal, ProposalSet


def _square(h: int, w: int, y0: int, x0: int, side: int) -> dict:
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0 : y0 + side, x0 : x0 + side] = 1
    return masks.encode(m)


def test_round_trip_keeps_masks_scores_and_extra_fields():
    rle = _square(6, 8, 1, 2, 3)
    record = ImageProposals(
        image_id=7,
        height=6,
        width=8,
        proposals=[Proposal(segmentation=rle, score=0.5), Proposal(segmentation=rle, level=2)],
    )
    data = ProposalSet(source="unit", images=[record]).model_dump_json(exclude_none=True)
    back = ProposalSet.model_validate_json(data)
    assert back.version == 1 and back.source == "unit"
    first, second = back.images[0].proposals
    assert first.score == 0.5 and second.score is None
    assert second.model_extra == {"level": 2}
    decoded = masks.decode(first.segmentation.model_dump())
    assert decoded.sum() == 9 and decoded[1:4, 2:5].all()


def test_uncompressed_rle_is_accepted():
    rle = masks.to_uncompressed(_square(4, 4, 0, 0, 2))
    record = ImageProposals(image_id=1, height=4, width=4, proposals=[{"segmentation": rle}])
    assert not record.proposals[0].segmentation.compressed


def test_mask_size_must_match_the_image():
    with pytest.raises(ValidationError, match=r"proposals\[1\].segmentation.size is \[6, 8\]"):
        ImageProposals(
            image_id=1,
            height=8,
            width=6,
            proposals=[
                {"segmentation": _square(8, 6, 0, 0, 2)},
                {"segmentation": _square(6, 8, 0, 0, 2)},
            ],
        )


def test_duplicate_image_ids_are_refused():
    record = {"image_id": 3, "height": 2, "width": 2, "proposals": []}
    with pytest.raises(ValidationError, match="image_id 3 appears twice"):
        ProposalSet(images=[record, record])


def test_non_finite_score_is_refused():
    with pytest.raises(ValidationError):
        Proposal(segmentation=_square(4, 4, 0, 0, 1), score=float("nan"))
