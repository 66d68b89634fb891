"""`rem info` figures against pycocotools and hand counts."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math

import pytest
from click.testing import CliRunner
from coco_samples import dataset, lvis_dataset, val30, write
from pycocotools.coco import COCO

from rem_core.cli.main import cli


def info_json(path) -> dict:
    result = CliRunner().invoke(cli, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_counts_match_pycocotools():
    path = val30()
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(str(path))
    summary = info_json(path)
    assert summary["kind"] == "coco"
    assert (summary["images"], summary["annotations"], summary["categories"]) == (
        len(ref.imgs),
        len(ref.anns),
        len(ref.cats),
    )
    assert summary["crowd_annotations"] == len(ref.getAnnIds(iscrowd=1)) == 3
    assert summary["segmentation_kinds"] == {"polygon": 321, "uncompressed-rle": 3}
    rows = {r["id"]: r for r in summary["per_category"]}
    assert sorted(rows) == sorted(ref.cats)
    for cid, row in rows.items():
        assert row["name"] == ref.cats[cid]["name"]
        assert row["annotations"] == len(ref.getAnnIds(catIds=[cid]))
        assert row["images"] == len(ref.getImgIds(catIds=[cid]))
        assert row["crowd"] == len(ref.getAnnIds(catIds=[cid], iscrowd=1))
    # pycocotools' area filter is open at both ends; no val30 area sits on a boundary.
    areas = [a["area"] for a in ref.anns.values()]
    assert not {0, 32**2, 96**2} & set(areas)
    assert summary["area"]["coco"] == {
        "small": len(ref.getAnnIds(areaRng=[0, 32**2])),
        "medium": len(ref.getAnnIds(areaRng=[32**2, 96**2])),
        "large": len(ref.getAnnIds(areaRng=[96**2, 1e10])),
    }
    edges = [0, 8, 16, 32, 64, 96, 128, 256, 512, math.inf]
    by_hand = [sum(lo <= math.sqrt(a) < hi for a in areas) for lo, hi in itertools.pairwise(edges)]
    assert [b["count"] for b in summary["area"]["sqrt_area_bins"]] == by_hand


def test_messy_lvis_file(tmp_path):
    data = lvis_dataset()
    data["annotations"][0]["segmentation"].append([1, 2, 3, 4])
    del data["annotations"][2]["area"]
    summary = info_json(write(tmp_path / "lvis.json", data))
    assert summary["kind"] == "lvis"
    assert summary["crowd_annotations"] == 0  # missing iscrowd reads as 0
    assert summary["images_without_annotations"] == 1
    assert summary["degenerate_polygons"] == 1
    assert summary["annotations_without_area"] == 1
    assert summary["segmentation_kinds"] == {"polygon": 2, "uncompressed-rle": 1}
    assert [r["frequency"] for r in summary["per_category"]] == ["f", "c", "r"]
    assert summary["area"]["coco"] == {"small": 2, "medium": 0, "large": 0}  # areas 310 and 4


def test_results_file(tmp_path):
    dets = [
        {"image_id": 1, "category_id": 2, "score": 0.25, "bbox": [0, 0, 1, 1]},
        {
            "image_id": 1,
            "category_id": 1,
            "score": 0.75,
            "segmentation": {"size": [4, 5], "counts": "52207"},
        },
        {"image_id": 2, "category_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]},
    ]
    summary = info_json(write(tmp_path / "dets.json", dets))
    assert summary["kind"] == "results"
    assert (summary["detections"], summary["images"], summary["categories"]) == (3, 2, 2)
    assert summary["score"] == {"min": 0.25, "mean": 0.5, "max": 0.75}
    assert summary["segmentation_kinds"] == {"none": 2, "rle": 1}
    assert summary["per_category"] == [{"id": 1, "detections": 1}, {"id": 2, "detections": 2}]


def test_tables_are_printed(tmp_path):
    result = CliRunner().invoke(
        cli, ["info", str(write(tmp_path / "d.json", dataset())), "--max-categories", "2"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in (
        "annotations",
        "crowd annotations",
        "small (< 32²)",
        "person",
        "dog",
        "(1 more categories",
    ):
        assert text in out
    assert "cat " not in out


@pytest.mark.parametrize(
    ("content", "message"),
    [(b'{"images": [', "malformed JSON"), (b"3", "expected an instances object or a results list")],
)
def test_bad_input_exits_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
