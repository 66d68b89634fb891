"""The drawn synthetic sample: determinism, exact masks equal drawn pixels, coarse and predictions."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
import orjson
import pycocotools.mask as coco_mask
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rem_core import masks
from rem_core.errors import RemError
from rem_core.schemas import CocoDataset, Results
from rem_core.synth import make_sample
from rem_core.synth.render import palette_rgb

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

W, H = 200, 150


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _load(path: Path):
    return orjson.loads(path.read_bytes())


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def png_sample(tmp_path_factory):
    return make_sample(
        tmp_path_factory.mktemp("png"), num_images=12, seed=7, width=W, height=H, image_format="png"
    )


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_sample(tmp_path / "a", num_images=4, seed=3, width=W, height=H)
    b = make_sample(tmp_path / "b", num_images=4, seed=3, width=W, height=H)
    c = make_sample(tmp_path / "c", num_images=4, seed=4, width=W, height=H)
    files_a, files_b, files_c = _files(a.root), _files(b.root), _files(c.root)
    assert len(files_a) == 4 + 3
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    assert files_a["exact.json"] != files_c["exact.json"]
    assert files_a["images/synth_000001.jpg"] != files_c["images/synth_000001.jpg"]


def test_smaller_sample_is_a_prefix_of_a_larger_one(tmp_path):
    small = _files(make_sample(tmp_path / "s", num_images=2, seed=1, width=W, height=H).root)
    large = _files(make_sample(tmp_path / "l", num_images=5, seed=1, width=W, height=H).root)
    for name in ("images/synth_000001.jpg", "images/synth_000002.jpg"):
        assert small[name] == large[name]


def test_exact_masks_are_exactly_the_drawn_object_pixels(png_sample):
    """Classify every pixel by colour alone and compare with the category map of the masks."""
    exact = _load(png_sample.exact)
    palette = palette_rgb()
    for img in exact["images"]:
        bgr = cv2.imread(str(png_sample.image_dir / img["file_name"]), cv2.IMREAD_COLOR)
        rgb = bgr[..., ::-1].astype(np.float64)
        # Category whose colour is within 35 in every channel, else 0 (background).
        close = np.all(np.abs(rgb[:, :, None, :] - palette[None, None]) <= 35, axis=3)
        assert close.sum(axis=2).max() <= 1  # the palette colours never overlap
        by_colour = np.where(close.any(axis=2), close.argmax(axis=2) + 1, 0)
        by_masks = np.zeros((H, W), dtype=np.int64)
        for ann in exact["annotations"]:
            if ann["image_id"] != img["id"]:
                continue
            m = masks.decode(masks.to_rle(ann["segmentation"], H, W)).astype(bool)
            assert not (by_masks[m] != 0).any(), "instance masks must not overlap"
            by_masks[m] = ann["category_id"]
        assert np.array_equal(by_colour, by_masks), img["file_name"]


def test_jpeg_objects_keep_their_colour_inside_the_mask(tmp_path):
    sample = make_sample(tmp_path, num_images=3, seed=2, width=W, height=H)
    exact = _load(sample.exact)
    palette = palette_rgb()
    files = {img["id"]: img["file_name"] for img in exact["images"]}
    checked = 0
    for ann in exact["annotations"]:
        rgb = cv2.imread(str(sample.image_dir / files[ann["image_id"]]))[..., ::-1]
        m = masks.decode(masks.to_rle(ann["segmentation"], H, W))
        inner = cv2.erode(np.ascontiguousarray(m), np.ones((5, 5), np.uint8)).astype(bool)
        if inner.sum() < 20:
            continue
        mean = rgb[inner].astype(np.float64).mean(axis=0)
        assert np.abs(mean - palette[ann["category_id"] - 1]).max() < 12
        checked += 1
    assert checked >= 5


def test_files_are_valid_coco_and_consistent(png_sample):
    exact, coarse = _load(png_sample.exact), _load(png_sample.coarse)
    CocoDataset.model_validate(exact)
    CocoDataset.model_validate(coarse)
    Results.model_validate(_load(png_sample.predictions))
    assert [c["name"] for c in exact["categories"]][:3] == ["red disc", "blue box", "yellow star"]
    assert exact["images"] == coarse["images"]
    annotated = {a["image_id"] for a in exact["annotations"]}
    assert len(annotated) < len(exact["images"])  # some images have no annotation
    crowd = [a for a in exact["annotations"] if a["iscrowd"]]
    assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
    assert all(
        isinstance(a["segmentation"]["counts"], str)
        for a in exact["annotations"]
        if not a["iscrowd"]
    )
    for ann in exact["annotations"] + coarse["annotations"]:
        rle = masks.to_rle(ann["segmentation"], H, W)
        assert ann["area"] == masks.area(rle) > 0
        assert ann["bbox"] == masks.bbox(rle)
    # pycocotools reads them and evaluates the predictions without complaint.
    gt = _quiet_coco(png_sample.exact)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(png_sample.predictions))
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.2 < ev.stats[0] < 1.0


def test_coarse_annotations_are_degraded_but_close(png_sample):
    exact, coarse = _load(png_sample.exact), _load(png_sample.coarse)
    assert [a["id"] for a in exact["annotations"]] == [a["id"] for a in coarse["annotations"]]
    recorded = {r["id"]: r for r in coarse["info"]["rem_synth"]["per_annotation"]}
    for e, c in zip(exact["annotations"], coarse["annotations"]):
        assert (e["image_id"], e["category_id"], e["iscrowd"]) == (
            c["image_id"],
            c["category_id"],
            c["iscrowd"],
        )
        if e["iscrowd"]:
            assert c["segmentation"] == e["segmentation"]
            continue
        assert isinstance(c["segmentation"], list)  # polygons, like hand annotations
        gt = (
            coco_mask.frPyObjects(e["segmentation"], H, W)
            if isinstance(e["segmentation"], list)
            else e["segmentation"]
        )
        dt = coco_mask.merge(coco_mask.frPyObjects(c["segmentation"], H, W))
        score = float(coco_mask.iou([dt], [gt], [0])[0, 0])
        assert 0.5 < score < 1.0
        assert recorded[e["id"]]["iou"] == pytest.approx(score, abs=1e-4)
        assert set(recorded[e["id"]]) >= {"morph_px", "shift_px", "dp_epsilon_px"}


def test_predictions_have_ties_false_positives_and_matching_boxes(png_sample):
    preds = _load(png_sample.predictions)
    exact = _load(png_sample.exact)
    scores = [p["score"] for p in preds]
    assert len(set(scores)) < len(scores)  # ties
    for p in preds:
        assert isinstance(p["segmentation"]["counts"], str)
        assert p["bbox"] == coco_mask.toBbox(p["segmentation"]).tolist()
    # Some predictions overlap no ground truth of their image (false positives).
    gts_by_image: dict[int, list] = {}
    for a in exact["annotations"]:
        gts_by_image.setdefault(a["image_id"], []).append(masks.to_rle(a["segmentation"], H, W))
    unmatched = 0
    for p in preds:
        gts = gts_by_image.get(p["image_id"], [])
        if not gts or masks.iou([p["segmentation"]], gts).max() < 0.1:
            unmatched += 1
    assert unmatched >= 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_images": 0}, "num_images must be at least 1"),
        ({"width": 32}, "at least 64x64"),
        ({"num_categories": 11}, "num_categories must be 1..10"),
        ({"image_format": "gif"}, "image_format"),
    ],
)
def test_bad_arguments_raise_rem_error(tmp_path, kwargs, message):
    with pytest.raises(RemError, match=message):
        make_sample(tmp_path, **kwargs)
