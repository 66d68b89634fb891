"""Reading and writing peak files (:class:`rem_core.schemas.PeakSet` JSON) for CIM's PCL term."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from rem_core.errors import RemError
from rem_core.io import CocoFile, read_json, save_json
from rem_core.schemas import ImagePeaks, PeakSet
from rem_core.validate.report import join_path
from rem_models.cim.peaks import ClassPeak, frame_to_pixel

# (x, y, class): image pixel and 0-based class, the form rem_models.cim.pcl.peak_clusters takes.
PixelPeak = tuple[float, float, int]


def peak_record(
    image_id: int,
    height: int,
    width: int,
    peaks: Sequence[ClassPeak],
    frame: int,
    categories: Sequence[int],
) -> ImagePeaks:
    """An :class:`ImagePeaks` from frame peaks; ``categories[c]`` is class c's category id."""
    records = []
    for p in peaks:
        x, y = frame_to_pixel(p.row, p.col, frame, height, width)
        records.append(
            {
                "x": x,
                "y": y,
                "category_id": int(categories[p.category]),
                "score": p.score,
                "row": p.row,
                "col": p.col,
            }
        )
    return ImagePeaks(image_id=image_id, height=height, width=width, peaks=records)


def save_peaks(
    path: str | Path, records: Iterable[ImagePeaks], source: str, frame: int | None
) -> None:
    """Write a peak file atomically."""
    peak_set = PeakSet(source=source, frame_size=frame, images=list(records))
    save_json(path, peak_set.model_dump(mode="json", exclude_none=True))


def read_peak_set(path: str | Path) -> PeakSet:
    """The validated file; an invalid one -> RemError naming the first bad field."""
    try:
        return PeakSet.model_validate(read_json(path))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RemError(err["msg"], path=path, where=join_path("", err["loc"]) or None) from None


def load_peaks(
    path: str | Path, coco: CocoFile, categories: Sequence[int]
) -> dict[int, list[PixelPeak]]:
    """Per image id, its peaks as (x, y, class) ordered by score ascending (the order clusters
    are grown in). Each record must match its GT image's size and name a known category;
    records of images not in ``coco`` are ignored."""
    index = {cat: c for c, cat in enumerate(categories)}
    out: dict[int, list[PixelPeak]] = {}
    for i, record in enumerate(read_peak_set(path).images):
        image = coco.imgs.get(record.image_id)
        if image is None:
            continue
        if (record.height, record.width) != (image["height"], image["width"]):
            raise RemError(
                f"peaks are for a {record.width}x{record.height} image, the GT image "
                f"{record.image_id} is {image['width']}x{image['height']} (width x height)",
                path=path,
                where=f"images[{i}].height",
            )
        for j, peak in enumerate(record.peaks):
            if peak.category_id not in index:
                raise RemError(
                    f"category_id {peak.category_id} is not a category of the GT file",
                    path=path,
                    where=f"images[{i}].peaks[{j}].category_id",
                )
        ordered = sorted(record.peaks, key=lambda p: p.score)  # stable: file order on ties
        out[record.image_id] = [(p.x, p.y, index[p.category_id]) for p in ordered]
    return out
