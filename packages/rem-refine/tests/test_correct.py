"""Stage 3 (`rem correct`): removals, crowd flags and additions on a hand-built file."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_refine.correct import apply_corrections, provenance
from rem_refine.corrections import Corrections, load_corrections, parse_corrections

H, W = 10, 12


def rect_mask(r0, r1, c0, c1, h=H, w=W):
    """Rows r0..r1 and columns c0..c1 inclusive set to 1, on an (h, w) image."""
    m = np.zeros((h, w), dtype=np.uint8)
    m[r0 : r1 + 1, c0 : c1 + 1] = 1
    return m


def compressed(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def ann(ann_id, image_id, cat, source=None, source_id=None, iscrowd=0):
    out = {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": iscrowd}
    out["segmentation"] = [[1, 1, 4, 1, 4, 4, 1, 4]]
    out["area"] = 9.0
    out["bbox"] = [1.0, 1.0, 3.0, 3.0]
    if source is not None:
        out["source"], out["source_id"] = source, source_id
    return out


@pytest.fixture
def dataset():
    plain = ann(2001, 2, 53)
    del plain["iscrowd"]  # a plain record without provenance or iscrowd
    return {
        "images": [{"id": 1, "height": H, "width": W}, {"id": 2, "height": 20, "width": 30}],
        "categories": [
            {"id": 1, "name": "person"},
            {"id": 46, "name": "wine glass"},
            {"id": 52, "name": "banana"},
            {"id": 53, "name": "apple"},
        ],
        "annotations": [
            ann(1000, 1, 1, "coco", 11),
            ann(1001, 1, 46, "lvis", 501),
            ann(1002, 1, 53, "coco", 12),
            ann(2000, 2, 53, "coco", 13),
            plain,
        ],
    }


@pytest.fixture
def fixes():
    return Corrections.model_validate(
        {
            "remove": [
                {"image_id": 1, "source": "lvis", "source_id": 501, "comment": "dup of person"},
                {"image_id": 1, "source": "coco", "source_id": 999},
            ],
            "crowd": [
                {"image_id": 1, "source": "coco", "source_id": 12, "comment": "apple pile"},
                {"image_id": 1, "source": "lvis", "source_id": 501},
                {"image_id": 2, "source": "coco", "source_id": 13},
            ],
            "add": [
                {
                    "image_id": 1,
                    "category_id": 52,
                    "segmentation": compressed(rect_mask(2, 4, 3, 6)),
                },
                {
                    "image_id": 2,
                    "category_id": 53,
                    "segmentation": [[10.0, 5.0, 20.0, 5.0, 20.0, 12.0, 10.0, 12.0]],
                },
                {
                    "image_id": 1,
                    "category_id": 53,
                    "segmentation": {"size": [H, W], "counts": [0, 1, H * W - 1]},
                },
            ],
        }
    )


def test_provenance_defaults_to_coco_id():
    assert provenance({"id": 5, "image_id": 1}) == (1, "coco", 5)
    assert provenance({"id": 5, "image_id": 1, "source": "lvis", "source_id": 9}) == (1, "lvis", 9)


def test_apply_corrections_answer(dataset, fixes):
    before = copy.deepcopy(dataset)
    out, acc = apply_corrections(dataset, fixes)
    assert dataset == before  # input untouched
    got = [(a["id"], a["category_id"], a["iscrowd"], a.get("source")) for a in out["annotations"]]
    assert got == [
        (1000, 1, 0, "coco"),
        (1002, 53, 1, "coco"),  # crowd flag
        (2000, 53, 1, "coco"),  # crowd flag
        (2001, 53, 0, None),  # missing iscrowd written as 0
        (2024000000, 52, 0, "manual"),
        (2024000001, 53, 0, "manual"),
        (2024000002, 53, 0, "manual"),
    ]

    # Addition 0: rows 2..4 x columns 3..6 of a 10x12 image, by hand: 30 background pixels in
    # columns 0-2 plus 2 above the box, then per box column 3 on / 7 off (5 below + 2 above).
    add0 = out["annotations"][4]
    assert add0["segmentation"] == {"size": [H, W], "counts": [32, 3, 7, 3, 7, 3, 7, 3, 55]}
    assert add0["area"] == 12 and add0["bbox"] == [3, 2, 4, 3]
    assert all(type(v) is int for v in add0["bbox"])  # whole pixels, as the reference writes
    assert add0["source_id"] == 2024000000
    # Addition 1: a polygon, rasterised as pycocotools does, stored uncompressed at 20x30.
    add1 = out["annotations"][5]
    truth = mask_utils.merge(mask_utils.frPyObjects(fixes.add[1].segmentation, 20, 30))
    assert add1["area"] == int(mask_utils.area(truth))
    assert np.array_equal(
        mask_utils.decode(mask_utils.frPyObjects(add1["segmentation"], 20, 30)),
        mask_utils.decode(truth),
    )
    assert add1["bbox"] == list(mask_utils.toBbox(truth))
    # Addition 2: the single top-left pixel; its uncompressed counts start with a 0 run.
    add2 = out["annotations"][6]
    assert add2["segmentation"]["counts"] == [0, 1, H * W - 1]
    assert add2["area"] == 1 and add2["bbox"] == [0.0, 0.0, 1.0, 1.0]

    rep = acc.extra["corrections"]
    assert rep["remove"]["listed"] == 2 and rep["remove"]["matched"] == 1
    assert rep["remove"]["annotations_removed"] == 1
    assert [(u["index"], u["source_id"]) for u in rep["remove"]["unmatched"]] == [(1, 999)]
    assert rep["crowd"]["matched"] == 2 and rep["crowd"]["annotations_flagged"] == 2
    assert rep["crowd"]["unmatched"] == [
        {
            "index": 1,
            "image_id": 1,
            "source": "lvis",
            "source_id": 501,
            "why": "removed by a removal entry",
        }
    ]
    assert rep["add"] == {"listed": 3, "added": 3}

    # Sums: 5 in = 1 kept + 3 modified + 1 removed; 7 out = 1 + 3 + 3 added.
    totals = acc.to_dict()["totals"]
    assert (totals["input"], totals["kept"], totals["modified"], totals["removed"]) == (5, 1, 3, 1)
    assert (totals["added"], totals["output"]) == (3, 7)
    removed = [line for line in acc.log if line["outcome"] == "removed"]
    assert removed == [
        {
            "outcome": "removed",
            "reason": "corrections: remove",
            "detail": "remove[0]: dup of person",
            "id": 1001,
            "image_id": 1,
            "category_id": 46,
            "source": "lvis",
            "source_id": 501,
        }
    ]
    assert acc.reasons["modified"] == {"corrections: crowd flag": 2, "missing iscrowd set to 0": 1}


def test_already_crowd_is_kept_not_modified(dataset):
    dataset["annotations"][0]["iscrowd"] = 1
    fixes = Corrections(crowd=[{"image_id": 1, "source": "coco", "source_id": 11}])
    out, acc = apply_corrections(dataset, fixes)
    assert out["annotations"][0] == dataset["annotations"][0]
    assert acc.extra["corrections"]["crowd"]["already_crowd"] == 1
    assert acc.extra["corrections"]["crowd"]["annotations_flagged"] == 0
    assert acc.reasons["kept"]["corrections: crowd flag, already crowd"] == 1


def test_strict_fails_on_unmatched(dataset, fixes):
    with pytest.raises(RemError, match="1 remove entry matches no annotation") as err:
        apply_corrections(dataset, fixes, strict=True, corrections_path="fix.json")
    assert err.value.where == "remove[1]" and err.value.path == "fix.json"
    fixes.remove.pop(1)
    with pytest.raises(RemError, match="removed by a removal entry") as err:
        apply_corrections(dataset, fixes, strict=True)
    assert err.value.where == "crowd[1]"
    fixes.crowd.pop(1)
    out, _ = apply_corrections(dataset, fixes, strict=True)
    assert len(out["annotations"]) == 7


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ({"image_id": 9, "category_id": 52}, "add[0].image_id", "image 9 is not in"),
        ({"image_id": 1, "category_id": 99}, "add[0].category_id", "category 99 is not in"),
        (
            {"image_id": 2, "category_id": 52},
            "add[0].segmentation",
            r"RLE size \[10, 12\] differs from image 2's \[height, width\] \[20, 30\]",
        ),
        (
            {"image_id": 1, "category_id": 52, "segmentation": {"size": [H, W], "counts": [H * W]}},
            "add[0].segmentation",
            "the added mask is empty",
        ),
        (
            {"image_id": 1, "category_id": 52, "segmentation": {"size": [H, W], "counts": [3, 4]}},
            "add[0].segmentation",
            "cover 7 pixels",
        ),
    ],
)
def test_bad_additions(dataset, entry, where, message):
    entry = {"segmentation": compressed(rect_mask(0, 1, 0, 1)), **entry}
    fixes = Corrections.model_validate({"add": [entry]})
    with pytest.raises(RemError, match=message) as err:
        apply_corrections(dataset, fixes, corrections_path="fix.json")
    assert err.value.where == where and err.value.path == "fix.json"


def test_addition_id_collision(dataset, fixes):
    with pytest.raises(RemError, match="addition id 2000 is already used"):
        apply_corrections(dataset, fixes, id_base=2000)


def test_schema_errors_name_the_entry():
    with pytest.raises(RemError, match="Extra inputs are not permitted") as err:
        entry = {"image_id": 1, "source": "coco", "source_id": 3, "coment": "typo"}
        parse_corrections({"remove": [entry]}, "f.json")
    assert err.value.where == "remove[0].coment" and err.value.path == "f.json"
    with pytest.raises(RemError, match="Field required") as err:
        parse_corrections({"crowd": [{"image_id": 1, "source": "coco"}]})
    assert err.value.where == "crowd[0].source_id"
    with pytest.raises(RemError) as err:
        parse_corrections({"add": [{"image_id": 1, "category_id": 2, "segmentation": 5}]})
    assert err.value.where == "add[0].segmentation"
    with pytest.raises(RemError) as err:
        parse_corrections({"format": "something-else"})
    assert err.value.where == "format"


def test_cli_correct(tmp_path, dataset, fixes):
    src = tmp_path / "interim.json"
    src.write_bytes(orjson.dumps(dataset))
    fix = tmp_path / "fixes.json"
    fix.write_bytes(orjson.dumps(fixes.model_dump(mode="json")))
    assert load_corrections(fix) == fixes
    out = tmp_path / "instances_valrem.json"
    args = ["correct", "--input", str(src), "--corrections", str(fix), "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "5 -> 7 annotations" in result.output
    assert "2 entries matched nothing" in result.output
    expected, _ = apply_corrections(dataset, fixes)
    assert orjson.loads(out.read_bytes()) == expected
    report = orjson.loads((tmp_path / "instances_valrem.accounting.json").read_bytes())
    assert report["totals"]["removed"] == 1 and report["totals"]["added"] == 3

    result = CliRunner().invoke(cli, [*args, "--strict"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {fix}: remove[1]: 1 remove entry matches")

    draft = fixes.model_copy(update={"draft": True})
    fix.write_bytes(orjson.dumps(draft.model_dump(mode="json")))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and f"error: {fix}: draft: is a draft" in result.output
    result = CliRunner().invoke(cli, [*args, "--allow-draft"])
    assert result.exit_code == 0, result.output


def test_cli_bad_annotation_record_is_one_line(tmp_path, dataset):
    del dataset["annotations"][3]["image_id"]
    src = tmp_path / "interim.json"
    src.write_bytes(orjson.dumps(dataset))
    fix = tmp_path / "fixes.json"
    fix.write_text('{"remove": []}')
    args = ["--input", str(src), "--output", str(tmp_path / "o.json")]
    for command in (["correct", "--corrections", str(fix)], ["find-duplicates"]):
        result = CliRunner().invoke(cli, [*command, *args])
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"error: {src}: annotations[3]: 'image_id' must be an integer, got None"
        )
    assert not (tmp_path / "o.json").exists()
