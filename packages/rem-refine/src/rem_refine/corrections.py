"""The corrections file read by `rem correct` and drafted by `rem find-duplicates` (refine.md §3).

An annotation is named by its provenance triple ``(image_id, source, source_id)``, never by its
merged id, so a corrections file stays valid when the merge stage re-ids. Annotations without
``source`` / ``source_id`` (a plain COCO file) are named ``(image_id, "coco", id)``.

Example::

    {
      "format": "rem-corrections", "version": 1, "draft": false,
      "description": "COCO-ReM val fixes",
      "remove": [{"image_id": 139, "source": "coco", "source_id": 1768, "comment": "cup -> wine glass"}],
      "crowd":  [{"image_id": 632, "source": "coco", "source_id": 2156, "comment": "banana pile"}],
      "add":    [{"image_id": 139, "category_id": 52, "segmentation": {"size": [426, 640], "counts": "..."}}]
    }

Corrections are applied in the order remove, crowd, add. ``draft`` is true in files written by
`rem find-duplicates`; `rem correct` refuses a draft until a reviewer sets it to false.
``duplicates`` holds the pairs that a draft was built from; `rem correct` ignores it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rem_core.errors import RemError
from rem_core.io import read_json
from rem_core.schemas import RLE, Polygons
from rem_core.validate.report import join_path


class _Strict(BaseModel):
    # A typo in a hand-edited file ("source_ID") must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class InstanceRef(_Strict):
    """One existing annotation, by provenance, with a free-text reason."""

    image_id: int
    source: str = Field(min_length=1)
    source_id: int
    comment: str | None = None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.image_id, self.source, self.source_id)


class Addition(_Strict):
    """A new annotation. ``segmentation`` is RLE (compressed or not) at the image size, or polygons."""

    image_id: int
    category_id: int
    segmentation: RLE | Polygons
    comment: str | None = None


class DuplicateSide(_Strict):
    """One member of a duplicate pair, as found in the input file."""

    image_id: int
    source: str
    source_id: int
    id: int
    category_id: int
    area: float


class DuplicatePair(_Strict):
    """Two annotations of one image whose masks overlap with IoU above the threshold.

    ``a`` comes before ``b`` in the input file. ``proposed`` is true when the draft lists ``b``
    for removal (false when ``a`` or ``b`` was already proposed through an earlier pair).
    """

    iou: Annotated[float, Field(ge=0, le=1)]
    a: DuplicateSide
    b: DuplicateSide
    proposed: bool


class Corrections(_Strict):
    """A set of manual corrections for one annotation file."""

    format: Literal["rem-corrections"] = "rem-corrections"
    version: Literal[1] = 1
    draft: bool = False
    description: str | None = None
    remove: list[InstanceRef] = Field(default_factory=list)
    crowd: list[InstanceRef] = Field(default_factory=list)
    add: list[Addition] = Field(default_factory=list)
    duplicates: list[DuplicatePair] = Field(default_factory=list)


def parse_corrections(data: object, path: str | Path | None = None) -> Corrections:
    """Validate a parsed corrections document; the first problem becomes a one-line RemError."""
    try:
        return Corrections.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        # For a union (RLE | polygons) pydantic appends the tried member's name to the location;
        # the user needs the field, so cut the path at the segmentation.
        if "segmentation" in loc:
            loc = loc[: loc.index("segmentation") + 1]
        more = f" ({exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise RemError(
            f"{err['msg']}{more}", path=path, where=join_path("", loc) or "(root)"
        ) from None


def load_corrections(path: str | Path) -> Corrections:
    """Read and validate a corrections JSON file."""
    return parse_corrections(read_json(path), path)
