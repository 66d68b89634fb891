"""Stage 2 (`rem merge`) on hand-built COCO + LVIS files whose merge answer is worked out by hand.

The fixture covers every rule of refine.md §2: split filter by coco_url, 79-category map with hot
dog unmapped, not-exhaustive filter (val only), the strict count rule per (image, category) with
crowd counted, LVIS-only groups appended, ids image_id*1000 + index, source/source_id tags and
iscrowd 0 on LVIS annotations.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_refine.lvis_map import (
    COCO_TO_LVIS,
    LVIS_SYNSETS,
    LVIS_TO_COCO,
    UNMAPPED_COCO,
    check_lvis_categories,
)
from rem_refine.merge import image_split, merge_lvis

# LVIS v1 ids (refine.md §2.3): person 793, car 207, cup 344, wineglass 1190.
L_PERSON, L_CAR, L_CUP, L_WINEGLASS = 793, 207, 344, 1190
L_HOTDOG = 600  # LVIS v1 "hotdog"; any id outside the map behaves the same
L_OTHER = 5  # an LVIS-only class (not one of the 79)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"

VAL = "http://images.cocodataset.org/val2017/{:012d}.jpg"
TRAIN = "http://images.cocodataset.org/train2017/{:012d}.jpg"


def square(x: float, y: float, s: float = 4.0) -> list[list[float]]:
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def coco_ann(ann_id, image_id, cat, iscrowd=0):
    ann = {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": iscrowd}
    ann["segmentation"] = square(ann_id % 10, 1)
    ann["area"] = 16.0
    ann["bbox"] = [ann_id % 10, 1, 4, 4]
    return ann


def lvis_ann(ann_id, image_id, cat):
    # LVIS records carry no iscrowd.
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": square(ann_id % 10, 2),
        "area": 16.0,
        "bbox": [ann_id % 10, 2, 4, 4],
    }


def lvis_image(image_id, url, not_exhaustive=()):
    return {
        "id": image_id,
        "height": 20,
        "width": 30,
        "coco_url": url.format(image_id),
        "neg_category_ids": [],
        "not_exhaustive_category_ids": list(not_exhaustive),
    }


def lvis_categories():
    return [
        {"id": i, "name": n, "synset": s, "frequency": "f"}
        for i, n, s in [
            (L_OTHER, "aerosol_can", "aerosol.n.02"),
            (L_CAR, "car_(automobile)", "car.n.01"),
            (L_CUP, "cup", "cup.n.01"),
            (L_HOTDOG, "hotdog", "frank.n.02"),
            (L_PERSON, "person", "person.n.01"),
            (L_WINEGLASS, "wineglass", "wineglass.n.01"),
        ]
    ]


@pytest.fixture
def coco():
    images = [{"id": i, "height": 20, "width": 30, "file_name": f"{i:012d}.jpg"} for i in (1, 2, 3)]
    cats = [
        {"id": 1, "name": "person"},
        {"id": 3, "name": "car"},
        {"id": 46, "name": "wine glass"},
        {"id": 47, "name": "cup"},
        {"id": 58, "name": "hot dog"},
    ]
    anns = [
        coco_ann(11, 1, 1),
        coco_ann(12, 1, 3),
        coco_ann(13, 2, 47),
        coco_ann(14, 1, 1, iscrowd=1),
        coco_ann(15, 1, 58),
        coco_ann(16, 1, 3),
    ]
    return {
        "info": {"description": "hand-built"},
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


@pytest.fixture
def lvis_files():
    # File A (an "LVIS train" file): a train image, a val image with cup not exhaustive, and a
    # val image that the COCO file does not have.
    lvis_a = {
        "images": [
            lvis_image(100, TRAIN),
            lvis_image(2, VAL, not_exhaustive=[L_CUP]),
            lvis_image(4, VAL),
        ],
        "annotations": [
            lvis_ann(901, 2, L_WINEGLASS),
            lvis_ann(902, 100, L_PERSON),
            lvis_ann(903, 2, L_CUP),
            lvis_ann(904, 2, L_CUP),
            lvis_ann(905, 4, L_CAR),
        ],
        "categories": lvis_categories(),
    }
    # File B (an "LVIS val" file): images 1 and 3. Its annotations on image 1 are interleaved.
    lvis_b = {
        "images": [lvis_image(1, VAL), lvis_image(3, VAL)],
        "annotations": [
            lvis_ann(951, 1, L_PERSON),
            lvis_ann(952, 1, L_HOTDOG),
            lvis_ann(953, 1, L_PERSON),
            lvis_ann(954, 1, L_CAR),
            lvis_ann(955, 1, L_CAR),
            lvis_ann(956, 3, L_PERSON),
            lvis_ann(957, 1, L_PERSON),
            lvis_ann(958, 1, L_HOTDOG),
            lvis_ann(959, 1, L_HOTDOG),
            lvis_ann(960, 1, L_OTHER),
        ],
        "categories": lvis_categories(),
    }
    return [lvis_a, lvis_b]


def summary(anns):
    return [(a["id"], a["image_id"], a["category_id"], a["source"], a["source_id"]) for a in anns]


def test_category_map_facts():
    assert len(COCO_TO_LVIS) == 79
    assert len(set(COCO_TO_LVIS.values())) == 79
    assert 58 not in COCO_TO_LVIS and {58} == UNMAPPED_COCO
    # The 80 COCO ids are 1..90 minus these ten gaps; all but hot dog are mapped.
    gaps = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert set(COCO_TO_LVIS) == set(range(1, 91)) - gaps - {58}
    assert LVIS_TO_COCO[793] == 1 and LVIS_TO_COCO[1190] == 46 and COCO_TO_LVIS[90] == 1102
    assert COCO_TO_LVIS[21] == 80 and COCO_TO_LVIS[88] == 1071  # cow -> beef, teddy bear -> teddy
    assert set(LVIS_SYNSETS) == set(LVIS_TO_COCO)
    # Pairs whose names differ (refine.md §2.3), spot-checked through their synsets.
    assert LVIS_SYNSETS[COCO_TO_LVIS[89]] == "hand_blower.n.01"  # hair drier
    assert LVIS_SYNSETS[COCO_TO_LVIS[64]] == "pot.n.04"  # potted plant
    assert L_HOTDOG not in LVIS_TO_COCO and L_OTHER not in LVIS_TO_COCO


def test_image_split_from_url():
    assert image_split(VAL.format(1)) == "val"
    assert image_split(TRAIN.format(1)) == "train"
    assert image_split("http://example.com/x.jpg") is None


def test_val_merge_answer(coco, lvis_files):
    merged, acc = merge_lvis(coco, lvis_files, "val")
    # Worked out by hand: COCO groups in first-appearance order (1,person) (1,car) (2,cup)
    # (1,hot dog), then LVIS-only groups (2,wine glass) (3,person); ids image_id*1000 + index.
    assert summary(merged["annotations"]) == [
        (1000, 1, 1, "lvis", 951),  # LVIS person 3 > COCO person 2 (crowd counted) -> all LVIS
        (1001, 1, 1, "lvis", 953),
        (1002, 1, 1, "lvis", 957),
        (1003, 1, 3, "coco", 12),  # LVIS car 2 is not > COCO car 2 -> COCO kept
        (1004, 1, 3, "coco", 16),
        (2000, 2, 47, "coco", 13),  # LVIS cups dropped: cup not exhaustive on image 2 (val)
        (1005, 1, 58, "coco", 15),  # hot dog is unmapped: 3 LVIS hotdogs never replace it
        (2001, 2, 46, "lvis", 901),  # LVIS-only groups, appended in first-appearance order
        (3000, 3, 1, "lvis", 956),
    ]
    for ann in merged["annotations"]:
        assert ann["iscrowd"] == 0  # COCO crowd 14 was replaced; LVIS ones get an explicit 0
    # LVIS fields are kept as they were.
    lvis_951 = next(a for a in merged["annotations"] if a["source_id"] == 951)
    assert lvis_951["segmentation"] == square(1, 2) and lvis_951["bbox"] == [1, 2, 4, 4]
    # COCO images, categories and other keys are the output's.
    assert merged["images"] == coco["images"]
    assert merged["categories"] == coco["categories"]
    assert merged["info"] == coco["info"]

    totals = acc.to_dict()["totals"]
    assert (totals["input"], totals["kept"], totals["removed"], totals["added"]) == (6, 4, 2, 5)
    assert totals["output"] == 9 == len(merged["annotations"])
    assert acc.reasons["removed"] == {
        "replaced by a larger LVIS group": 1,
        "crowd replaced by a larger LVIS group": 1,
    }
    assert {line["source_id"] for line in acc.log} == {11, 14}  # one log line per removal
    lvis = acc.extra["lvis"]
    assert lvis["annotations"] == 15 and lvis["taken"] == 5
    assert lvis["dropped"] == {
        "image not in this split": 1,  # 902 on train image 100
        "image not in COCO file": 1,  # 905 on image 4
        "category has no COCO pair": 4,  # three hot dogs and one aerosol can
        "category not exhaustive on image (val)": 2,  # 903, 904
        "LVIS group not larger than COCO group": 2,  # 954, 955
    }
    assert acc.extra["from_source"] == {"coco": 4, "lvis": 5}


def test_inputs_are_not_modified(coco, lvis_files):
    before = copy.deepcopy((coco, lvis_files))
    merge_lvis(coco, lvis_files, "val")
    assert (coco, lvis_files) == before


def test_not_exhaustive_filter_can_be_turned_off(coco, lvis_files):
    merged, _ = merge_lvis(coco, lvis_files, "val", not_exhaustive_filter=False)
    cups = [(a["source"], a["source_id"]) for a in merged["annotations"] if a["category_id"] == 47]
    assert cups == [("lvis", 903), ("lvis", 904)]  # 2 LVIS cups > 1 COCO cup


def test_train_keeps_not_exhaustive_groups():
    coco = {
        "images": [{"id": 100, "height": 20, "width": 30}, {"id": 101, "height": 20, "width": 30}],
        "annotations": [coco_ann(1, 100, 1), coco_ann(2, 101, 1), coco_ann(3, 101, 1)],
        "categories": [{"id": 1, "name": "person"}],
    }
    lvis = {
        "images": [
            lvis_image(100, TRAIN, not_exhaustive=[L_PERSON]),
            lvis_image(101, TRAIN),
            lvis_image(5, VAL),
        ],
        "annotations": [
            lvis_ann(71, 100, L_PERSON),
            lvis_ann(72, 100, L_PERSON),
            lvis_ann(73, 101, L_PERSON),
            lvis_ann(74, 5, L_PERSON),
        ],
        "categories": lvis_categories(),
    }
    merged, acc = merge_lvis(coco, [lvis], "train")
    assert summary(merged["annotations"]) == [
        (100000, 100, 1, "lvis", 71),  # not exhaustive, but train keeps it: 2 > 1
        (100001, 100, 1, "lvis", 72),
        (101000, 101, 1, "coco", 2),  # 1 LVIS is not > 2 COCO
        (101001, 101, 1, "coco", 3),
    ]
    assert acc.extra["not_exhaustive_filter"] is False
    assert acc.extra["lvis"]["dropped"]["image not in this split"] == 1  # 74 on a val image
    # The same files as val: the not-exhaustive person group on image 100 is dropped, but the
    # train images are not in the val split anyway.
    merged_val, _ = merge_lvis(coco, [lvis], "val")
    assert [a["source"] for a in merged_val["annotations"]] == ["coco"] * 3


def test_lvis_crowd_count_and_missing_iscrowd_on_coco():
    # A COCO annotation without iscrowd gets 0 in the output; counts include crowd on both sides.
    coco = {
        "images": [{"id": 7, "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": square(0, 0)},
            coco_ann(2, 7, 1, iscrowd=1),
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    lvis = {
        "images": [lvis_image(7, VAL)],
        "annotations": [lvis_ann(81, 7, L_PERSON), lvis_ann(82, 7, L_PERSON)],
        "categories": lvis_categories(),
    }
    merged, _ = merge_lvis(coco, [lvis], "val")
    # 2 LVIS vs 2 COCO (one crowd): not strictly more, COCO stays, crowd included.
    assert [(a["source_id"], a["iscrowd"]) for a in merged["annotations"]] == [(1, 0), (2, 1)]


def test_id_scheme_bound_and_sequential():
    coco = {
        "images": [{"id": 3, "height": 20, "width": 30}, {"id": 4, "height": 20, "width": 30}],
        "annotations": [coco_ann(i, 3, 1) for i in range(1, 1002)] + [coco_ann(5000, 4, 1)],
        "categories": [{"id": 1, "name": "person"}],
    }
    with pytest.raises(RemError, match="more than 1000 merged annotations"):
        merge_lvis(coco, [], "val")
    merged, _ = merge_lvis(coco, [], "val", id_scheme="sequential")
    assert [a["id"] for a in merged["annotations"]] == list(range(1, 1003))
    # 1000 on image 3 still fit (3000..3999) without touching image 4's 4000.
    coco["annotations"] = coco["annotations"][1:]
    merged, _ = merge_lvis(coco, [], "val")
    ids = [a["id"] for a in merged["annotations"]]
    assert ids[0] == 3000 and ids[999] == 3999 and ids[1000] == 4000
    assert len(set(ids)) == len(ids)


def test_lvis_v05_numbering_is_refused(coco, lvis_files):
    lvis_files[1]["categories"].append({"id": 1190, "name": "x", "synset": "wind_chime.n.01"})
    with pytest.raises(RemError, match="LVIS v1") as err:
        merge_lvis(coco, lvis_files, "val", lvis_paths=["a.json", "b.json"])
    assert err.value.path == "b.json" and err.value.where == "categories[6].synset"
    check_lvis_categories([{"id": 1190, "name": "wineglass"}])  # no synset: nothing to check


def write(path, obj):
    path.write_bytes(orjson.dumps(obj))
    return path


def test_cli_merge_writes_output_and_accounting(tmp_path, coco, lvis_files):
    c = write(tmp_path / "coco.json", coco)
    a = write(tmp_path / "lvis_a.json", lvis_files[0])
    b = write(tmp_path / "lvis_b.json", lvis_files[1])
    out = tmp_path / "merged" / "instances_val_interim.json"
    args = ["merge", "--coco-json", c, "--lvis-json", a, "--lvis-json", b, "--split", "val"]
    result = CliRunner().invoke(cli, [*map(str, args), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "9 annotations" in result.output and "4 from COCO, 5 from LVIS" in result.output
    expected, _ = merge_lvis(coco, lvis_files, "val")
    assert orjson.loads(out.read_bytes()) == expected
    report = orjson.loads((out.parent / "instances_val_interim.accounting.json").read_bytes())
    assert report["stage"] == "merge"
    assert report["totals"]["input"] == 6 and report["totals"]["output"] == 9
    person = next(r for r in report["categories"] if r["id"] == 1)
    assert (person["name"], person["removed"], person["added"]) == ("person", 2, 4)


def test_cli_merge_bad_input_is_one_line(tmp_path, coco, lvis_files):
    lvis_files[0]["annotations"][2]["category_id"] = "cup"
    c = write(tmp_path / "coco.json", coco)
    a = write(tmp_path / "lvis_a.json", lvis_files[0])
    out = tmp_path / "out.json"
    args = ["merge", "--coco-json", c, "--lvis-json", a, "--split", "val", "--output", out]
    result = CliRunner().invoke(cli, list(map(str, args)))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {a}: annotations[2]: 'category_id' must be an integer, got 'cup'"
    )
    assert not out.exists()

    (tmp_path / "broken.json").write_text('{"images": [')
    args[2] = tmp_path / "broken.json"
    result = CliRunner().invoke(cli, list(map(str, args)))
    assert result.exit_code == 2 and result.output.startswith(f"error: {tmp_path / 'broken.json'}")
    assert "Traceback" not in result.output


def test_count_rule_against_a_set_oracle():
    """Random groups: every output group is the COCO or the LVIS group, by the strict count rule."""
    cats = [1, 3, 58, 47]  # 58 (hot dog) is unmapped
    for seed in range(40):
        rng = random.Random(seed)
        images = [{"id": i, "height": 9, "width": 9} for i in (1, 2, 3, 4)]
        coco_anns, lvis_anns, lvis_images = [], [], []
        for im in images:
            lvis_images.append(
                lvis_image(
                    im["id"],
                    VAL,
                    not_exhaustive=[COCO_TO_LVIS[c] for c in (1, 3) if rng.random() < 0.2],
                )
            )
        for k in range(rng.randint(0, 25)):
            coco_anns.append(
                coco_ann(10 + k, rng.choice(images)["id"], rng.choice(cats), rng.random() < 0.1)
            )
        for k in range(rng.randint(0, 40)):
            cat = rng.choice(cats)
            lvis_cat = COCO_TO_LVIS.get(cat, L_HOTDOG)
            lvis_anns.append(lvis_ann(500 + k, rng.choice(images)["id"], lvis_cat))
        rng.shuffle(coco_anns)
        rng.shuffle(lvis_anns)
        coco = {"images": images, "annotations": coco_anns, "categories": [{"id": c} for c in cats]}
        lvis = {"images": lvis_images, "annotations": lvis_anns, "categories": lvis_categories()}
        for split_filter in (True, False):
            merged, acc = merge_lvis(coco, [lvis], "val", not_exhaustive_filter=split_filter)
            skip = {
                (im["id"], LVIS_TO_COCO[c])
                for im in lvis_images
                for c in im["not_exhaustive_category_ids"]
            }
            keys = {(a["image_id"], a["category_id"]) for a in coco_anns}
            keys |= {
                (a["image_id"], LVIS_TO_COCO[a["category_id"]])
                for a in lvis_anns
                if a["category_id"] in LVIS_TO_COCO
            }
            expected = set()
            for key in keys:
                c = {
                    ("coco", a["id"]) for a in coco_anns if (a["image_id"], a["category_id"]) == key
                }
                lv = {
                    ("lvis", a["id"])
                    for a in lvis_anns
                    if (a["image_id"], LVIS_TO_COCO.get(a["category_id"])) == key
                    and not (split_filter and key in skip)
                }
                expected |= lv if len(lv) > len(c) else c
            got = [(a["source"], a["source_id"]) for a in merged["annotations"]]
            assert sorted(got) == sorted(expected) and len(got) == len(set(got))
            ids = [a["id"] for a in merged["annotations"]]
            assert len(set(ids)) == len(ids)
            assert all(i // 1000 == a["image_id"] for i, a in zip(ids, merged["annotations"]))
            assert acc.n_input() == len(coco_anns) and acc.n_output() == len(got)
            assert acc.total("kept") + acc.total("removed") == len(coco_anns)


def test_real_coco_passes_through_unchanged_without_lvis_gain():
    """Real COCO val2017 polygons and crowd RLE: an LVIS copy of the same instances changes nothing."""
    path = SHARED / "data" / "coco-val2017-30" / "instances_val2017_30.json"
    if not path.exists():
        pytest.skip(f"../shared test data not found: {path}")
    coco = orjson.loads(path.read_bytes())
    lvis = {
        "images": [lvis_image(im["id"], VAL) for im in coco["images"]],
        "annotations": [
            {**a, "id": 10**7 + a["id"], "category_id": COCO_TO_LVIS[a["category_id"]]}
            for a in coco["annotations"]
            if a["category_id"] in COCO_TO_LVIS
        ],
        "categories": [],
    }
    merged, acc = merge_lvis(coco, [lvis], "val")
    assert acc.total("kept") == len(coco["annotations"]) and acc.total("added") == 0
    by_source_id = {a["source_id"]: a for a in merged["annotations"]}
    for ann in coco["annotations"]:
        out = by_source_id[ann["id"]]
        assert out["source"] == "coco"
        assert {k: v for k, v in out.items() if k not in ("id", "source", "source_id")} == {
            k: v for k, v in ann.items() if k != "id"
        }
    # One extra LVIS instance in the first group flips exactly that group to LVIS.
    first = coco["annotations"][0]
    extra = {**first, "id": 1, "category_id": COCO_TO_LVIS[first["category_id"]]}
    lvis["annotations"].append(extra)
    merged, acc = merge_lvis(coco, [lvis], "val")
    key = (first["image_id"], first["category_id"])
    group = [a for a in merged["annotations"] if (a["image_id"], a["category_id"]) == key]
    assert {a["source"] for a in group} == {"lvis"}
    assert acc.total("removed") == sum(
        (a["image_id"], a["category_id"]) == key for a in coco["annotations"]
    )
