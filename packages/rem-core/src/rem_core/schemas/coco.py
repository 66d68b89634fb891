"""COCO instances and the LVIS / COCO-ReM additions.

Every model keeps unknown fields (``extra="allow"``) so files round-trip: LVIS adds
``neg_category_ids`` and ``frequency``, COCO-ReM adds ``source`` and ``source_id``, and users add
their own. LVIS annotations have no ``iscrowd``; it defaults to 0.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RLE(BaseModel):
    """Run-length encoded mask in column-major order, as pycocotools writes it.

    ``counts`` is a list of ints (uncompressed RLE, as COCO-ReM and crowd annotations store it)
    or a str (compressed RLE; pycocotools' bytes are decoded to str).
    """

    model_config = ConfigDict(extra="forbid")

    size: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]  # (height, width)
    counts: str | list[Annotated[int, Field(ge=0)]]

    @field_validator("counts", mode="before")
    @classmethod
    def _bytes_to_str(cls, v: object) -> object:
        return v.decode("ascii") if isinstance(v, bytes) else v

    @property
    def compressed(self) -> bool:
        return isinstance(self.counts, str)


Polygons = list[list[FiniteFloat]]
"""One or more polygons, each a flat list ``[x1, y1, x2, y2, ...]`` in pixel coordinates."""

Segmentation = RLE | Polygons


class Info(_Record):
    description: str | None = None
    url: str | None = None
    version: str | None = None
    year: int | None = None
    contributor: str | None = None
    date_created: str | None = None


class License(_Record):
    id: int
    name: str | None = None
    url: str | None = None


class Image(_Record):
    """An image record. LVIS adds ``neg_category_ids`` and ``not_exhaustive_category_ids``."""

    id: int
    file_name: str | None = None
    height: Annotated[int, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]
    license: int | None = None
    coco_url: str | None = None
    flickr_url: str | None = None
    date_captured: str | None = None
    neg_category_ids: list[int] | None = None
    not_exhaustive_category_ids: list[int] | None = None


class Category(_Record):
    """A category. LVIS adds ``frequency`` ("r", "c" or "f"), ``synonyms`` and counts."""

    id: int
    name: str
    supercategory: str | None = None
    frequency: Literal["r", "c", "f"] | None = None


class Annotation(_Record):
    """An instance annotation. ``bbox`` is XYWH in pixels; ``area`` is the mask area."""

    id: int
    image_id: int
    category_id: int
    segmentation: Segmentation | None = None
    area: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = None
    iscrowd: Literal[0, 1] = 0

    @field_validator("bbox")
    @classmethod
    def _non_negative_size(cls, v: tuple[float, float, float, float] | None):
        if v is not None and (v[2] < 0 or v[3] < 0):
            raise ValueError(f"bbox width and height must be >= 0, got {list(v)}")
        return v


class CocoDataset(_Record):
    """A COCO (or LVIS, or COCO-ReM) instances file."""

    info: Info | None = None
    licenses: list[License] = Field(default_factory=list)
    images: list[Image]
    annotations: list[Annotation] = Field(default_factory=list)
    categories: list[Category]
