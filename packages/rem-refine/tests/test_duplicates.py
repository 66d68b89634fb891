"""`rem find-duplicates` on hand-built overlapping masks whose IoUs are computed by hand."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from rem_core.cli.main import cli
from rem_refine.corrections import load_corrections
from rem_refine.duplicates import draft_corrections, find_duplicates

SHARED = Path(__file__).resolve().parents[3].parent / "shared"


def mask(h, w, cells):
    m = np.zeros((h, w), dtype=np.uint8)
    for r0, r1, c0, c1 in cells:
        m[r0 : r1 + 1, c0 : c1 + 1] = 1
    return m


def compressed(m):
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": list(map(int, rle["size"])), "counts": rle["counts"].decode("ascii")}


def uncompressed(m):
    flat = m.flatten(order="F")
    runs, value, n = [], 0, 0
    for px in flat:
        if px != value:
            runs.append(n)
            value, n = px, 0
        n += 1
    runs.append(n)
    return {"size": list(m.shape), "counts": runs}


# Image 1 (10x10). A = rows 0-4 x cols 0-4 (25 px); B = rows 0-4 x cols 0-3 (20 px, inside A);
# C = A without pixel (4, 4) (24 px, contains B); D far away; E = A as a crowd region.
# IoU(A,B) = 20/25 = 0.8 (not > 0.8), IoU(A,C) = 24/25 = 0.96, IoU(B,C) = 20/24 = 0.8333,
# IoU(A,E) = 1, IoU(C,E) = 0.96, IoU(B,E) = 0.8; D overlaps nothing.
M_A = mask(10, 10, [(0, 4, 0, 4)])
M_B = mask(10, 10, [(0, 4, 0, 3)])
M_C = M_A.copy()
M_C[4, 4] = 0
M_D = mask(10, 10, [(7, 9, 7, 9)])
SQUARE = [[5.0, 5.0, 15.0, 5.0, 15.0, 12.0, 5.0, 12.0]]


@pytest.fixture
def dataset():
    poly_rle = mask_utils.frPyObjects(SQUARE, 20, 30)[0]
    poly_rle = {"size": list(poly_rle["size"]), "counts": poly_rle["counts"].decode("ascii")}

    def ann(i, img, cat, seg, src="coco", crowd=0):
        return {
            "id": 100 + i,
            "image_id": img,
            "category_id": cat,
            "segmentation": seg,
            "iscrowd": crowd,
            "source": src,
            "source_id": i,
        }

    return {
        "images": [
            {"id": 1, "height": 10, "width": 10},
            {"id": 2, "height": 20, "width": 30},
            {"id": 3, "height": 10, "width": 10},
        ],
        "categories": [
            {"id": 1, "name": "person"},
            {"id": 46, "name": "wine glass"},
            {"id": 47, "name": "cup"},
        ],
        "annotations": [
            ann(1, 1, 47, compressed(M_A)),  # A
            ann(2, 1, 46, uncompressed(M_B), src="lvis"),  # B
            ann(3, 1, 47, compressed(M_C)),  # C
            ann(4, 1, 1, compressed(M_D)),  # D
            ann(5, 1, 1, uncompressed(M_A), crowd=1),  # E
            ann(6, 2, 1, SQUARE),  # F: polygon
            ann(7, 2, 1, poly_rle, src="lvis"),  # G: the same polygon as compressed RLE
            ann(8, 2, 1, [[1.0, 2.0, 3.0]]),  # degenerate polygon: empty mask
            ann(9, 2, 1, []),  # no segmentation
            ann(10, 3, 1, compressed(M_A)),  # alone on its image
            ann(11, 99, 1, compressed(M_A)),  # image not in the file
        ],
    }


def pairs_of(search):
    return [(p.a.source_id, p.b.source_id, round(p.iou, 4), p.proposed) for p in search.pairs]


def test_hand_computed_pairs(dataset):
    search = find_duplicates(dataset)
    assert pairs_of(search) == [
        (1, 3, 0.96, True),  # A-C: C (later) proposed
        (2, 3, 0.8333, False),  # B-C: C already proposed, B kept for the reviewer to judge
        (6, 7, 1.0, True),  # polygon vs RLE of the same polygon
    ]  # A-B at exactly 0.8 is not reported: the rule is IoU > 0.8
    assert search.skipped == {
        "crowd (use include_crowd)": 1,
        "empty mask": 1,
        "no segmentation": 1,
        "image not in file": 1,
    }
    assert search.images == 3 and search.annotations_compared == 7
    # The reported IoUs are pycocotools' too.
    truth = mask_utils.iou([compressed(M_B)], [compressed(M_C)], [0])[0, 0]
    assert search.pairs[1].iou == pytest.approx(truth) == pytest.approx(20 / 24)


def test_options(dataset):
    assert pairs_of(find_duplicates(dataset, same_category=True)) == [
        (1, 3, 0.96, True),
        (6, 7, 1.0, True),
    ]
    assert pairs_of(find_duplicates(dataset, include_crowd=True))[:4] == [
        (1, 3, 0.96, True),
        (1, 5, 1.0, True),
        (2, 3, 0.8333, False),
        (3, 5, 0.96, False),
    ]
    assert pairs_of(find_duplicates(dataset, threshold=0.79))[:3] == [
        (1, 2, 0.8, True),
        (1, 3, 0.96, True),
        (2, 3, 0.8333, False),  # both already proposed
    ]


def test_draft_corrections(dataset):
    search = find_duplicates(dataset)
    draft = draft_corrections(search, dataset["categories"])
    assert draft.draft is True and draft.duplicates == search.pairs
    assert [(r.image_id, r.source, r.source_id) for r in draft.remove] == [
        (1, "coco", 3),
        (2, "lvis", 7),
    ]
    assert draft.remove[0].comment == "IoU 0.960 with coco:1 (cup); cup -> cup"
    assert draft.remove[1].comment == "IoU 1.000 with coco:6 (person); person -> person"


def test_cli_find_duplicates_then_correct(tmp_path, dataset):
    src = tmp_path / "merged.json"
    src.write_bytes(orjson.dumps(dataset))
    draft = tmp_path / "draft.json"
    result = CliRunner().invoke(
        cli, ["find-duplicates", "--input", str(src), "--output", str(draft)]
    )
    assert result.exit_code == 0, result.output
    assert "3 pairs" in result.output and "2 removals proposed" in result.output
    fixes = load_corrections(draft)
    assert fixes.draft and len(fixes.remove) == 2 and len(fixes.duplicates) == 3

    out = tmp_path / "fixed.json"
    args = ["correct", "--input", str(src), "--corrections", str(draft), "--output", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 2  # a draft is refused
    result = CliRunner().invoke(cli, [*args, "--allow-draft"])
    assert result.exit_code == 0, result.output
    kept = [a["source_id"] for a in orjson.loads(out.read_bytes())["annotations"]]
    assert kept == [1, 2, 4, 5, 6, 8, 9, 10, 11]


def test_real_coco_pairs_match_brute_force():
    path = SHARED / "data" / "coco-val2017-30" / "instances_val2017_30.json"
    if not path.exists():
        pytest.skip(f"../shared test data not found: {path}")
    data = orjson.loads(path.read_bytes())
    threshold = 0.5  # low enough that real COCO polygons produce pairs
    search = find_duplicates(data, threshold=threshold)
    found = {(p.a.source_id, p.b.source_id): p.iou for p in search.pairs}

    images = {im["id"]: im for im in data["images"]}
    truth = {}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if not ann["iscrowd"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
    for img_id, anns in by_image.items():
        h, w = images[img_id]["height"], images[img_id]["width"]
        rles = [mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w)) for a in anns]
        for (i, a), (j, b) in combinations(enumerate(anns), 2):
            value = mask_utils.iou([rles[i]], [rles[j]], [0])[0, 0]
            if value > threshold:
                truth[(a["id"], b["id"])] = value
    assert found.keys() == truth.keys() and len(truth) > 0
    for key, value in truth.items():
        assert found[key] == pytest.approx(value, abs=1e-12)
