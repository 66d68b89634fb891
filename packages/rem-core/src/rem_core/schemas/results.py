"""COCO detection results: a list of scored detections with a box and/or a mask."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from rem_core.schemas.coco import RLE, FiniteFloat, Polygons


class Detection(BaseModel):
    """One detection. ``bbox`` is XYWH in pixels; ``segmentation`` is RLE (or polygons)."""

    model_config = ConfigDict(extra="allow")

    image_id: int
    category_id: int
    score: Annotated[float, Field(allow_inf_nan=False)]
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = None
    segmentation: RLE | Polygons | None = None

    @model_validator(mode="after")
    def _has_geometry(self) -> Detection:
        if self.bbox is None and self.segmentation is None:
            raise ValueError("a detection needs a bbox or a segmentation")
        return self


class Results(RootModel[list[Detection]]):
    """A COCO results file: a JSON list of detections."""
