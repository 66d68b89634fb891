"""COCO-scale JSON generators, checked at small scale with pycocotools and the schemas."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import orjson
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rem_core import masks
from rem_core.errors import RemError
from rem_core.schemas import CocoDataset
from rem_core.synth import write_eval_benchmark, write_large_json
from rem_core.synth.coco_categories import COCO_CATEGORIES

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


@pytest.mark.parametrize("segmentation", ["polygon", "rle", "uncompressed"])
def test_large_json_loads_in_pycocotools_with_requested_counts(tmp_path, segmentation):
    path = write_large_json(
        tmp_path / "big.json",
        num_images=400,
        num_annotations=3000,
        seed=5,
        segmentation=segmentation,
    )
    coco = _quiet(COCO, str(path))
    assert len(coco.imgs) == 400 and len(coco.anns) == 3000 and len(coco.cats) == 80
    assert {c["id"] for c in coco.cats.values()} == {c for c, _, _ in COCO_CATEGORIES}
    empty = sum(1 for i in coco.imgs if not coco.imgToAnns[i])
    assert 1 <= empty <= 12  # about 1%
    crowd = [a for a in coco.anns.values() if a["iscrowd"]]
    assert 5 <= len(crowd) <= 80  # about 1% of 3000
    assert all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
    anns = list(coco.anns.values())
    kinds = {type(a["segmentation"]).__name__ for a in anns if not a["iscrowd"]}
    assert kinds == ({"list"} if segmentation == "polygon" else {"dict"})
    if segmentation == "polygon":
        parted = np.mean([len(a["segmentation"]) > 1 for a in anns if not a["iscrowd"]])
        assert 0.04 < parted < 0.13  # about 8% of objects in 2-3 parts
    rng = np.random.default_rng(0)
    areas = []
    for k in rng.choice(len(anns), size=400, replace=False):
        ann = anns[k]
        img = coco.imgs[ann["image_id"]]
        rle = masks.to_rle(ann["segmentation"], img["height"], img["width"])
        areas.append(masks.area(rle))
        x, y, w, h = masks.bbox(rle)
        # Boxes enclose the rasterised mask up to the sub-pixel rounding of polygon boxes.
        bx, by, bw, bh = ann["bbox"]
        assert x >= bx - 1 and y >= by - 1 and x + w <= bx + bw + 1 and y + h <= by + bh + 1
        if isinstance(ann["segmentation"], dict):
            assert ann["area"] == masks.area(rle) and ann["bbox"] == masks.bbox(rle)
        else:
            assert all(10 <= len(p) // 2 <= 60 for p in ann["segmentation"])
            assert abs(ann["area"] - masks.area(rle)) <= 0.15 * ann["area"] + 10
    areas = np.asarray(areas)
    small, large = np.mean(areas < 32**2), np.mean(areas >= 96**2)
    assert 0.3 < small < 0.52 and 0.15 < large < 0.35  # COCO: 41% small, 24% large


def test_large_json_is_deterministic_and_schema_valid(tmp_path):
    a = write_large_json(tmp_path / "a.json", num_images=50, num_annotations=300, seed=1)
    b = write_large_json(tmp_path / "b.json", num_images=50, num_annotations=300, seed=1)
    c = write_large_json(tmp_path / "c.json", num_images=50, num_annotations=300, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    data = orjson.loads(a.read_bytes())
    CocoDataset.model_validate(data)
    assert len({ann["id"] for ann in data["annotations"]}) == 300


def test_large_json_rejects_unknown_format(tmp_path):
    with pytest.raises(RemError, match="segmentation must be one of"):
        write_large_json(tmp_path / "x.json", num_images=2, num_annotations=2, segmentation="mesh")


def test_eval_benchmark_is_coco_val_like(tmp_path):
    gt_path, res_path = write_eval_benchmark(tmp_path, num_images=30, seed=0)
    gt = _quiet(COCO, str(gt_path))
    assert len(gt.imgs) == 30 and len(gt.anns) == round(7.36 * 30)
    dets = orjson.loads(res_path.read_bytes())
    per_image = np.bincount([d["image_id"] for d in dets])
    assert per_image[per_image > 0].max() == 100 and per_image[per_image > 0].min() >= 95
    assert all(isinstance(d["segmentation"]["counts"], str) for d in dets)
    scores = [d["score"] for d in dets]
    assert len(set(scores)) < len(scores)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(res_path))
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.2 < ev.stats[0] < 0.8  # a plausible detector, neither perfect nor useless
    assert ev.stats[1] > ev.stats[2]  # AP50 above AP75
    again = write_eval_benchmark(tmp_path / "again", num_images=30, seed=0)
    assert again[1].read_bytes() == res_path.read_bytes()
