"""LVIS "COCOfied" (AggMask's AP*): the conversion, and scoring it with ``rem eval --lvis``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rem_core.errors import RemError
from rem_models.solo.cli_cocofy import cocofy_lvis as cocofy_command
from rem_models.solo.lvis_cocofied import COCO_SYNSETS, cocofy_lvis


def _rle_square(h: int, w: int, y0: int, x0: int, side: int) -> dict:
    # Column-major uncompressed RLE of one square (rem-eval accepts uncompressed RLE).
    counts, pos = [], 0
    for x in range(w):
        for y in range(h):
            inside = x0 <= x < x0 + side and y0 <= y < y0 + side
            if inside != (len(counts) % 2 == 1):
                counts.append(pos)
                pos = 0
            pos += 1
    counts.append(pos)
    return {"size": [h, w], "counts": counts}


def lvis_sample() -> dict:
    """Two 32x32 images; LVIS ids 7 (dog.n.01 -> COCO 18), 3 (person.n.01 -> COCO 1) and
    5 (aardvark.n.01, not a COCO category)."""
    cats = [
        {"id": 3, "synset": "person.n.01", "name": "person", "frequency": "f"},
        {"id": 5, "synset": "aardvark.n.01", "name": "aardvark", "frequency": "r"},
        {"id": 7, "synset": "dog.n.01", "name": "dog", "frequency": "c"},
    ]
    images = [
        {
            "id": 1,
            "height": 32,
            "width": 32,
            "neg_category_ids": [5, 7],
            "not_exhaustive_category_ids": [],
        },
        {
            "id": 2,
            "height": 32,
            "width": 32,
            "neg_category_ids": [],
            "not_exhaustive_category_ids": [5],
        },
    ]
    anns = []
    for ann_id, (image, cat, y0, x0) in enumerate(
        [(1, 3, 2, 2), (1, 5, 20, 20), (2, 7, 4, 10), (2, 3, 16, 2), (2, 5, 0, 0)], start=40
    ):
        anns.append(
            {
                "id": ann_id,
                "image_id": image,
                "category_id": cat,
                "bbox": [x0, y0, 8, 8],
                "area": 64,
                "segmentation": _rle_square(32, 32, y0, x0, 8),
            }
        )
    return {
        "info": {"description": "tiny LVIS"},
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


def test_table_is_the_80_coco_categories():
    ids = [c for _, c in COCO_SYNSETS]
    assert len(ids) == 80 == len(set(ids))
    assert ids == sorted(ids) and ids[0] == 1 and ids[-1] == 90
    assert {12, 26, 29, 30, 45, 66, 68, 69, 71, 83} & set(ids) == set()  # COCO's unused ids


def test_cocofy_by_hand():
    src = lvis_sample()
    before = json.dumps(src)
    out = cocofy_lvis(src)
    assert json.dumps(src) == before  # input untouched
    assert [(a["id"], a["image_id"], a["category_id"]) for a in out["annotations"]] == [
        (1, 1, 1),
        (2, 2, 18),
        (3, 2, 1),
    ]
    assert out["images"][0]["neg_category_ids"] == [18]
    assert out["images"][1]["not_exhaustive_category_ids"] == []
    assert [(c["id"], c["synset"], c["frequency"]) for c in out["categories"]] == [
        (1, "person.n.01", "f"),
        (18, "dog.n.01", "c"),
    ]
    assert out["info"] == src["info"]
    with pytest.raises(RemError, match=r"annotations\[0\]\.category_id: unknown category id 9"):
        cocofy_lvis({**src, "annotations": [{**src["annotations"][0], "category_id": 9}]})


def test_cocofied_file_scores_with_rem_eval_lvis(tmp_path):
    rem_eval = pytest.importorskip("rem_eval")
    from rem_core.cli.main import cli

    source, dest = tmp_path / "lvis_val.json", tmp_path / "lvis_val_cocofied.json"
    source.write_text(json.dumps(lvis_sample()))
    result = CliRunner().invoke(cocofy_command, [str(source), str(dest)], catch_exceptions=False)
    assert result.exit_code == 0 and "3 annotations, 2 COCO categories" in result.output
    gt = json.loads(dest.read_text())
    # A COCO model's perfect predictions: GT masks with COCO category ids.
    perfect = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "score": 0.9,
            "segmentation": a["segmentation"],
        }
        for a in gt["annotations"]
    ]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(perfect))
    report = tmp_path / "report.json"
    run = CliRunner().invoke(
        cli,
        ["eval", str(dest), str(results), "--lvis", "--json", str(report)],
        catch_exceptions=False,
    )
    assert run.exit_code == 0, run.output
    stats = json.loads(report.read_text())["metrics"]["segm"]["stats"]
    assert stats["AP"] == pytest.approx(1.0)
    # The same call through the Python API, with one person missed: AP drops.
    partial = rem_eval.evaluate(str(dest), perfect[:2], ["segm"], lvis=True)
    assert partial.metrics["segm"].stats["AP"] < 1.0


def test_command_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"categories": [{"id": 1, "name": "x"}], "annotations": []}))
    result = CliRunner().invoke(cocofy_command, [str(bad), str(tmp_path / "out.json")])
    assert result.exit_code != 0
    assert isinstance(result.exception, RemError)
    assert str(result.exception) == f"{bad}: categories[0]: an LVIS category needs a 'synset'"
