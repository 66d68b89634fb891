"""Per-image mask proposals: the input of weakly supervised instance segmentation (CIM).

A proposal file is JSON::

    {"version": 1, "source": "selective-search",
     "images": [{"image_id": 1, "height": 480, "width": 640,
                 "proposals": [{"segmentation": {"size": [480, 640], "counts": "..."},
                                "score": 0.93}, ...]}]}

Masks are COCO RLE (compressed or uncompressed) of the whole image, ``size`` = (height, width)
of the image record they belong to; ``score`` is optional (COB and SAM give one, superpixel
grouping does not). Any mask source works: COB, MCG, SAM, CutLER, superpixels; boxes alone do not
(CIM crops each proposal's mask).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rem_core.schemas.coco import RLE


class Proposal(BaseModel):
    """One mask proposal: a whole-image RLE and an optional objectness score."""

    model_config = ConfigDict(extra="allow")

    segmentation: RLE
    score: Annotated[float, Field(allow_inf_nan=False)] | None = None


class ImageProposals(BaseModel):
    """The proposals of one image; every mask must have the image's (height, width)."""

    model_config = ConfigDict(extra="allow")

    image_id: int
    height: Annotated[int, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]
    proposals: list[Proposal] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sizes_match(self) -> ImageProposals:
        for i, proposal in enumerate(self.proposals):
            size = tuple(proposal.segmentation.size)
            if size != (self.height, self.width):
                raise ValueError(
                    f"proposals[{i}].segmentation.size is {list(size)}, "
                    f"the image is [{self.height}, {self.width}] (height, width)"
                )
        return self


class ProposalSet(BaseModel):
    """A proposal file: one :class:`ImageProposals` per image, image ids unique."""

    model_config = ConfigDict(extra="allow")

    version: Literal[1] = 1
    source: str | None = None
    images: list[ImageProposals] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_images(self) -> ProposalSet:
        seen: set[int] = set()
        for i, record in enumerate(self.images):
            if record.image_id in seen:
                raise ValueError(f"images[{i}]: image_id {record.image_id} appears twice")
            seen.add(record.image_id)
        return self
