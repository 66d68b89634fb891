"""Per-image class peaks (points): the cluster seeds of CIM's PCL term.

A peak file is JSON::

    {"version": 1, "source": "prm", "frame_size": 112,
     "images": [{"image_id": 1, "height": 480, "width": 640,
                 "peaks": [{"x": 211, "y": 96, "category_id": 18, "score": 14.2,
                            "row": 22, "col": 37}, ...]}]}

``x``/``y`` are the point in the ORIGINAL image's pixels (column, row; ``0 <= x < width``,
``0 <= y < height``); they are what training uses. ``category_id`` is the dataset's category id,
``score`` the peak's strength (PRM: the class response at the peak); training processes an
image's peaks weakest first, so a stronger peak's cluster wins a disputed proposal. PRM peaks also
carry ``row``/``col``, their cell in the square ``frame_size`` x ``frame_size`` peak frame
(``x = int(col * width / frame_size)``, ``y = int(row * height / frame_size)``); points from
elsewhere (BESTIE-style points, i.e. CIM-p) may leave ``row``, ``col`` and ``frame_size`` out.
An image listed with no peaks makes every overlapping proposal background.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class Peak(BaseModel):
    """One class point: image pixel (x, y), category, score and optional peak-frame cell."""

    model_config = ConfigDict(extra="allow")

    x: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    y: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    category_id: int
    score: _Finite
    row: Annotated[int, Field(ge=0)] | None = None
    col: Annotated[int, Field(ge=0)] | None = None


class ImagePeaks(BaseModel):
    """The peaks of one image; every point must lie inside the (height, width) image."""

    model_config = ConfigDict(extra="allow")

    image_id: int
    height: Annotated[int, Field(gt=0)]
    width: Annotated[int, Field(gt=0)]
    peaks: list[Peak] = Field(default_factory=list)

    @model_validator(mode="after")
    def _inside(self) -> ImagePeaks:
        for i, peak in enumerate(self.peaks):
            if peak.x >= self.width or peak.y >= self.height:
                raise ValueError(
                    f"peaks[{i}] at (x={peak.x:g}, y={peak.y:g}) lies outside the "
                    f"{self.width}x{self.height} (width x height) image"
                )
        return self


class PeakSet(BaseModel):
    """A peak file: one :class:`ImagePeaks` per image, image ids unique; ``frame_size`` is the
    side of the square frame ``row``/``col`` refer to (112 for PRM at 448x448 input)."""

    model_config = ConfigDict(extra="allow")

    version: Literal[1] = 1
    source: str | None = None
    frame_size: Annotated[int, Field(gt=0)] | None = None
    images: list[ImagePeaks] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> PeakSet:
        seen: set[int] = set()
        for i, record in enumerate(self.images):
            if record.image_id in seen:
                raise ValueError(f"images[{i}]: image_id {record.image_id} appears twice")
            seen.add(record.image_id)
            for j, peak in enumerate(record.peaks):
                cells = (peak.row, peak.col)
                if any(v is not None for v in cells) and self.frame_size is None:
                    raise ValueError(f"images[{i}].peaks[{j}] has row/col but no frame_size")
                if self.frame_size is not None and any(
                    v is not None and v >= self.frame_size for v in cells
                ):
                    raise ValueError(
                        f"images[{i}].peaks[{j}]: row/col must be < frame_size {self.frame_size}"
                    )
        return self
