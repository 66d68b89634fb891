"""`rem convert`: encodings against pycocotools, subsets, degenerate polygons, atomic output."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from coco_samples import dataset, lvis_dataset, val30, write
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from rem_core.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def convert(*args) -> tuple[object, dict | None]:
    result = CliRunner().invoke(cli, ["convert", *map(str, args)])
    assert "Traceback" not in result.output
    out = None
    if result.exit_code == 0:
        out = json.loads(Path(args[1]).read_text())
    return result, out


def _coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_to_rle_matches_pycocotools(tmp_path):
    src = val30()
    ref = _coco(src)
    result, out = convert(src, tmp_path / "rle.json", "--to", "rle")
    assert result.exit_code == 0, result.output
    assert len(out["annotations"]) == len(ref.anns)
    for ann in out["annotations"]:
        expected = ref.annToRLE(ref.anns[ann["id"]])
        assert ann["segmentation"] == {
            "size": expected["size"],
            "counts": expected["counts"].decode(),
        }
        # Only the segmentation changes.
        assert {k: v for k, v in ann.items() if k != "segmentation"} == {
            k: v for k, v in ref.anns[ann["id"]].items() if k != "segmentation"
        }


def test_uncompressed_round_trip_is_exact(tmp_path):
    src = val30()
    ref = _coco(src)
    result, unc = convert(src, tmp_path / "u.json", "--to", "uncompressed-rle")
    assert result.exit_code == 0, result.output
    for ann in unc["annotations"]:
        seg = ann["segmentation"]
        assert (
            isinstance(seg["counts"], list)
            and sum(seg["counts"]) == seg["size"][0] * seg["size"][1]
        )
        assert np.array_equal(
            mask_utils.decode(mask_utils.frPyObjects(seg, *seg["size"])),
            ref.annToMask(ref.anns[ann["id"]]),
        )
    result, back = convert(tmp_path / "u.json", tmp_path / "c.json", "--to", "rle")
    assert result.exit_code == 0
    _, direct = convert(src, tmp_path / "direct.json", "--to", "rle")
    assert back == direct


def test_rle_to_polygon_is_close_and_keeps_crowd(tmp_path):
    src = val30()
    ref = _coco(src)
    convert(src, tmp_path / "rle.json", "--to", "rle")
    result, out = convert(tmp_path / "rle.json", tmp_path / "poly.json", "--to", "polygon")
    assert result.exit_code == 0, result.output
    assert "warning: 3 crowd annotations kept as RLE" in result.stderr
    ious = []
    for ann in out["annotations"]:
        if ann["iscrowd"]:
            assert isinstance(ann["segmentation"], dict)
            continue
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
        img = ref.imgs[ann["image_id"]]
        traced = mask_utils.merge(
            mask_utils.frPyObjects(ann["segmentation"], img["height"], img["width"])
        )
        ious.append(mask_utils.iou([traced], [ref.annToRLE(ref.anns[ann["id"]])], [0])[0, 0])
    # Lossy, but close: measured mean 0.90, median 0.94 on these 321 COCO objects.
    assert len(ious) == 321
    assert np.mean(ious) > 0.88 and np.median(ious) > 0.92


def test_degenerate_polygons_are_dropped_with_counts(tmp_path):
    data = dataset()
    data["annotations"][0]["segmentation"].append([1, 1, 5, 5])  # one bad part: dropped
    data["annotations"][2]["segmentation"] = [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7]]  # nothing left
    src = write(tmp_path / "in.json", data)
    result, out = convert(src, tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert (
        "warning: 3 degenerate polygons dropped (fewer than 3 points or an odd number of coordinates)"
        in result.stderr
    )
    assert "warning: 1 annotations dropped: no polygon of 3+ points left" in result.stderr
    assert [a["id"] for a in out["annotations"]] == [10, 11]
    assert out["annotations"][0]["segmentation"] == dataset()["annotations"][0]["segmentation"]
    # Everything else, extra fields included, is as it was.
    assert out["annotations"][1] == dataset()["annotations"][1]
    assert out["extra_top_level"] == {"kept": True} and out["images"] == dataset()["images"]
    assert "wrote" in result.stdout and "2 annotations" in result.stdout


def test_subsets(tmp_path):
    src = write(tmp_path / "in.json", dataset())
    result, out = convert(src, tmp_path / "a.json", "--image-ids", "2,3")
    assert result.exit_code == 0, result.output
    assert [i["id"] for i in out["images"]] == [2, 3]
    assert [a["id"] for a in out["annotations"]] == [10, 12]
    assert out["categories"] == dataset()["categories"]

    _, out = convert(src, tmp_path / "b.json", "--categories", "dog")
    assert [c["name"] for c in out["categories"]] == ["dog"]
    assert [a["id"] for a in out["annotations"]] == [11, 12]
    assert len(out["images"]) == 3  # images stay: negatives for the kept category

    _, by_id = convert(src, tmp_path / "c.json", "--category-ids", "2")
    assert by_id == out

    lvis = write(tmp_path / "lvis.json", lvis_dataset())
    _, out = convert(lvis, tmp_path / "d.json", "--category-ids", "1,2", "--image-ids", "1")
    assert out["images"][0]["neg_category_ids"] == []  # category 5 is gone
    assert [a["id"] for a in out["annotations"]] == [11]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-ids", "1,x"], "expected comma-separated integers"),
        (["--image-ids", "1,42"], "image ids not in the file: [42]"),
        (["--category-ids", "9"], "category ids not in the file: [9]"),
        (["--categories", "zebra"], "no category named ['zebra']"),
        (["--categories", "dog", "--category-ids", "2"], "not both"),
        (["--to", "mesh"], "Invalid value for '--to'"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, args, message):
    src = write(tmp_path / "in.json", dataset())
    result, _ = convert(src, tmp_path / "out.json", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out.json").exists()


def test_corrupt_rle_fails_without_touching_the_output(tmp_path):
    data = dataset()
    data["annotations"][1]["segmentation"] = {"size": [4, 5], "counts": [5, 2, 2]}
    src = write(tmp_path / "in.json", data)
    dst = tmp_path / "out.json"
    dst.write_text("old")
    result, _ = convert(src, dst, "--to", "rle")
    assert result.exit_code == 2
    assert (
        f"error: {src}: annotations[1].segmentation: RLE 'counts' cover 9 pixels" in result.output
    )
    assert dst.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "out.json"]


def test_tracing_on_the_box_crop_equals_tracing_the_whole_mask():
    from rem_core import masks
    from rem_core.cli.convert import trace_polygons

    ref = _coco(val30())
    for ann in ref.anns.values():
        rle = masks.to_rle(ann["segmentation"], *ref.annToRLE(ann)["size"])
        assert trace_polygons(rle) == masks.mask_to_polygons(masks.decode(rle))
    # A mask touching every edge of the image, and an empty one.
    full = np.ones((5, 7), dtype=np.uint8)
    assert trace_polygons(masks.encode(full)) == masks.mask_to_polygons(full)
    assert trace_polygons(masks.encode(np.zeros((5, 7), dtype=np.uint8))) == []
