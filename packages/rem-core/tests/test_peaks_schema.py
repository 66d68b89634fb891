"""The peak-file schema: round trip, points inside the image, frame cells, unique image ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rem_core.schemas import ImagePeaks, Peak, PeakSet


def test_round_trip_keeps_points_cells_and_extra_fields():
    record = ImagePeaks(
        image_id=4,
        height=60,
        width=100,
        peaks=[
            Peak(x=50, y=30, category_id=22, score=10.0, row=4, col=4),
            Peak(x=12.5, y=7, category_id=11, score=0.9, source="bestie"),  # a point, no cell
        ],
    )
    data = PeakSet(source="prm", frame_size=8, images=[record]).model_dump_json(exclude_none=True)
    back = PeakSet.model_validate_json(data)
    assert back.version == 1 and back.frame_size == 8
    first, second = back.images[0].peaks
    assert (first.x, first.y, first.row, first.col, first.score) == (50, 30, 4, 4, 10.0)
    assert second.row is None and second.model_extra == {"source": "bestie"}


def test_points_must_lie_inside_the_image():
    with pytest.raises(ValidationError, match=r"peaks\[1\] at \(x=100, y=0\) lies outside"):
        ImagePeaks(
            image_id=1,
            height=60,
            width=100,
            peaks=[
                {"x": 99, "y": 59, "category_id": 1, "score": 1.0},
                {"x": 100, "y": 0, "category_id": 1, "score": 1.0},
            ],
        )
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Peak(x=-1, y=0, category_id=1, score=1.0)
    with pytest.raises(ValidationError, match="finite number"):
        Peak(x=0, y=0, category_id=1, score=float("nan"))


def test_cells_need_a_frame_and_must_fit_it():
    image = {
        "image_id": 1,
        "height": 8,
        "width": 8,
        "peaks": [{"x": 1, "y": 1, "category_id": 1, "score": 2.0, "row": 7, "col": 7}],
    }
    with pytest.raises(ValidationError, match=r"images\[0\].peaks\[0\] has row/col but no frame"):
        PeakSet(images=[image])
    with pytest.raises(ValidationError, match="row/col must be < frame_size 7"):
        PeakSet(frame_size=7, images=[image])
    assert PeakSet(frame_size=8, images=[image]).images[0].peaks[0].row == 7


def test_duplicate_image_ids_are_refused():
    record = {"image_id": 3, "height": 2, "width": 2, "peaks": []}
    with pytest.raises(ValidationError, match="image_id 3 appears twice"):
        PeakSet(images=[record, record])
