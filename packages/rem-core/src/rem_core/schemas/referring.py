"""Referring-expression samples (RefCOCO / RefCOCO+ / RefCOCOg and rem's own JSON form)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rem_core.schemas.coco import RLE, FiniteFloat, Polygons

Split = Literal["train", "val", "test", "testA", "testB"]


class Sentence(BaseModel):
    model_config = ConfigDict(extra="allow")

    sent: str
    sent_id: int | None = None
    tokens: list[str] | None = None


class ReferringSample(BaseModel):
    """One referred object: the image, its mask and/or box, and the sentences that name it."""

    model_config = ConfigDict(extra="allow")

    ref_id: int
    image_id: int
    file_name: str | None = None
    height: Annotated[int, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]
    split: Split
    category_id: int | None = None
    ann_id: int | None = None
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = None  # XYWH
    segmentation: RLE | Polygons | None = None
    sentences: list[Sentence] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_target(self) -> ReferringSample:
        if self.bbox is None and self.segmentation is None:
            raise ValueError("a referring sample needs a bbox or a segmentation")
        return self
