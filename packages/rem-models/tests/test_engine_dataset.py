"""Datasets from COCO files: label mapping, skipped records, masks, EXIF, augmentation, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from rem_core.errors import RemError
from rem_models.engine.augment import Geometry, apply_geometry, boxes_from_masks, sample_geometry
from rem_models.engine.categories import CategoryMap
from rem_models.engine.config import AugmentConfig
from rem_models.engine.dataset import CocoInstances, ImageFiles, image_size, read_image
from rem_models.engine.sampler import TrainBatchSampler

SQUARE = [1.0, 1.0, 5.0, 1.0, 5.0, 5.0, 1.0, 5.0]


def _write_png(path: Path, h: int, w: int, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path)


def _uncompressed(mask: np.ndarray) -> dict:
    """Uncompressed RLE (column-major runs, starting with zeros), as COCO-ReM stores masks."""
    flat = mask.flatten(order="F").astype(np.uint8)
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    return {"size": list(mask.shape), "counts": runs}


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A file with every kind of record the loader must keep, skip or count."""
    images = tmp_path / "images"
    for name, (h, w) in {"a.png": (8, 12), "b.png": (8, 12), "c.png": (8, 12)}.items():
        _write_png(images / name, h, w)
    rle_mask = np.zeros((8, 12), dtype=np.uint8)
    rle_mask[2:7, 6:11] = 1
    data = {
        "images": [
            {"id": 10, "file_name": "a.png", "height": 8, "width": 12},
            {"id": 11, "file_name": "b.png", "height": 8, "width": 12},
            {"id": 12, "file_name": "c.png", "height": 8, "width": 12},
        ],
        "categories": [
            {"id": 9, "name": "nine"},
            {"id": 2, "name": "two"},
            {"id": 5, "name": "five"},
        ],
        "annotations": [
            # a valid square plus a degenerate 4-number polygon
            {"id": 1, "image_id": 10, "category_id": 5, "segmentation": [SQUARE, [0, 0, 1, 1]]},
            # nothing but a degenerate polygon -> the annotation is skipped
            {"id": 2, "image_id": 10, "category_id": 9, "segmentation": [[2, 2, 3, 3]]},
            {"id": 3, "image_id": 10, "category_id": 2, "segmentation": _uncompressed(rle_mask)},
            {
                "id": 4,
                "image_id": 10,
                "category_id": 2,
                "iscrowd": 1,
                "segmentation": _uncompressed(rle_mask),
            },
            {"id": 5, "image_id": 10, "category_id": 77, "segmentation": [SQUARE]},
            {"id": 6, "image_id": 10, "category_id": 5, "bbox": [0, 0, 2, 2]},  # no mask
            {
                "id": 7,
                "image_id": 12,
                "category_id": 5,
                "iscrowd": 1,
                "segmentation": _uncompressed(rle_mask),
            },
        ],
    }
    path = tmp_path / "messy.json"
    path.write_text(json.dumps(data))
    return path, images, rle_mask


def test_category_map_sorts_by_id_and_round_trips() -> None:
    cats = CategoryMap.from_categories(
        [{"id": 9, "name": "c"}, {"id": 2, "name": "a"}, {"id": 5, "name": "b"}]
    )
    assert cats.ids == (2, 5, 9)
    assert [cats.to_label(i) for i in (2, 5, 9)] == [0, 1, 2]
    assert cats.to_category_id(2) == 9
    assert CategoryMap.from_json(cats.to_json()) == cats
    with pytest.raises(RemError, match="category_id 4 is not among"):
        cats.to_label(4)
    with pytest.raises(RemError, match="duplicate category ids"):
        CategoryMap.from_categories([{"id": 1}, {"id": 1}])


def test_messy_file_is_loaded_with_counted_skips(messy) -> None:
    path, images, rle_mask = messy
    ds = CocoInstances(path, images)
    s = ds.stats
    assert (s.images, s.images_kept, s.empty_images_dropped) == (3, 1, 2)
    assert (s.annotations, s.instances, s.crowd_skipped) == (7, 2, 2)
    assert (s.degenerate_polygons, s.unusable_skipped, s.unknown_category) == (2, 2, 1)
    warnings = s.warnings()
    assert warnings[0] == (
        "dropped 2 degenerate polygon(s) (< 6 coordinates or non-finite), "
        "e.g. annotations[0].segmentation"
    )
    assert "skipped 2 annotation(s) without a usable mask, e.g. annotations[1]" in warnings[1]
    assert "of a category not listed, e.g. annotations[4]" in warnings[2]
    assert warnings[3] == "dropped 2 image(s) without usable instances"

    image, target = ds[0]
    assert image.shape == (3, 8, 12) and float(image.max()) == 90.0
    assert target["image_id"] == 10
    assert target["labels"].tolist() == [1, 0]  # ids 5 and 2 in the order {2: 0, 5: 1, 9: 2}
    square = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([SQUARE], 8, 12)))
    assert np.array_equal(target["masks"][0].numpy(), square)
    assert np.array_equal(target["masks"][1].numpy(), rle_mask)
    assert target["boxes"].tolist() == [[1, 1, 5, 5], [6, 2, 11, 7]]  # XYXY pixel edges


def test_keeping_empty_images(messy) -> None:
    path, images, _ = messy
    ds = CocoInstances(path, images, filter_empty=False)
    assert [r.image_id for r in ds.records] == [10, 11, 12]
    _, target = ds[1]
    assert target["masks"].shape == (0, 8, 12) and target["boxes"].shape == (0, 4)


def test_missing_image_files_fail_early(messy) -> None:
    path, images, _ = messy
    (images / "a.png").unlink()
    with pytest.raises(RemError, match=r"1 image file\(s\) listed in .* are missing"):
        CocoInstances(path, images)


def test_lvis_records_are_found_by_coco_url_and_escapes_refused(messy) -> None:
    """LVIS names images by coco_url only (train2017 and val2017 mixed); no file_name."""
    path, images, _ = messy
    data = json.loads(path.read_text())
    (images / "val2017").mkdir()
    (images / "a.png").rename(images / "val2017" / "a.png")
    for img in data["images"]:
        name = img.pop("file_name")
        img["coco_url"] = f"http://images.cocodataset.org/val2017/{name}"
    path.write_text(json.dumps(data))
    ds = CocoInstances(path, images)
    assert ds.records[0].path == images / "val2017" / "a.png"
    assert ImageFiles(path, images).entries[1]["path"] == images / "b.png"
    data["images"][0]["file_name"] = "../outside.png"
    path.write_text(json.dumps(data))
    with pytest.raises(RemError, match="escapes the image folder") as info:
        CocoInstances(path, images)
    assert info.value.where == "images[0].file_name"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A 6x4 (WxH) JPEG tagged 'rotate 90' is a 4x6 upright image, as the annotations see it."""
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[0] = 255  # top row white (luma survives JPEG chroma subsampling)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    upright = read_image(path)
    assert upright.shape == (6, 4, 3)
    assert upright[:, -1].min() > 200 and upright[:, 0].max() < 60  # white is now on the right
    assert image_size(path) == {"height": 6, "width": 4}

    data = {
        "images": [{"id": 1, "file_name": "rot.jpg", "height": 4, "width": 6}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3]]}
        ],
    }
    (tmp_path / "rot.json").write_text(json.dumps(data))
    with pytest.raises(RemError, match=r"image is 4x6 .* annotation file says 6x4"):
        CocoInstances(tmp_path / "rot.json", tmp_path)[0]


def test_image_files_from_folder(tmp_path: Path) -> None:
    _write_png(tmp_path / "b.png", 5, 7)
    _write_png(tmp_path / "a.png", 3, 4)
    (tmp_path / "notes.txt").write_text("not an image")
    files = ImageFiles(tmp_path)
    assert [(e["image_id"], e["file_name"]) for e in files.entries] == [(1, "a.png"), (2, "b.png")]
    image, info = files[1]
    assert image.shape == (3, 5, 7) and info == {
        "image_id": 2,
        "file_name": "b.png",
        "height": 5,
        "width": 7,
    }
    with pytest.raises(RemError, match="no image files"):
        ImageFiles(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)


# ------------------------------------------------------------------------------------------
# augmentation


def _block_image() -> tuple[np.ndarray, np.ndarray]:
    """A 4x8 image and one mask covering rows 1-2, columns 2-5."""
    mask = np.zeros((1, 4, 8), dtype=np.uint8)
    mask[0, 1:3, 2:6] = 1
    image = np.stack([mask[0] * 200, mask[0] * 100, np.full((4, 8), 7, np.uint8)], axis=-1)
    return image.astype(np.uint8), mask


def test_flip_mirrors_image_and_masks() -> None:
    image, mask = _block_image()
    out_image, out_mask = apply_geometry(image, mask, Geometry(True, 4, 8, 0, 0, 4, 8))
    assert np.array_equal(out_mask[0], mask[0][:, ::-1])
    assert np.array_equal(out_image, image[:, ::-1])
    assert boxes_from_masks(out_mask).tolist() == [[2, 1, 6, 3]]  # columns 2-5 mirrored in 8


def test_enlarging_doubles_block_masks_and_crops_exactly() -> None:
    image, mask = _block_image()
    doubled = np.kron(mask[0], np.ones((2, 2), np.uint8))  # 8x16
    _, full = apply_geometry(image, mask, Geometry(False, 8, 16, 0, 0, 8, 16))
    assert np.array_equal(full[0], doubled)
    _, crop = apply_geometry(image, mask, Geometry(False, 8, 16, 1, 3, 5, 9))
    assert np.array_equal(crop[0], doubled[1:6, 3:12])


def test_shrinking_halves_even_blocks_exactly() -> None:
    mask = np.zeros((2, 8, 16), dtype=np.uint8)
    mask[0, 2:6, 4:12] = 1
    mask[1, 0:2, 0:2] = 1
    image = np.zeros((8, 16, 3), dtype=np.uint8)
    _, out = apply_geometry(image, mask, Geometry(False, 4, 8, 0, 0, 4, 8))
    expected = np.zeros((2, 4, 8), dtype=np.uint8)
    expected[0, 1:3, 2:6] = 1
    expected[1, 0, 0] = 1
    assert np.array_equal(out, expected)


def test_lsj_geometry_bounds_and_determinism() -> None:
    cfg = AugmentConfig(kind="lsj", image_size=64, min_scale=0.1, max_scale=2.0)
    scales, flips = [], 0
    for seed in range(300):
        g = sample_geometry(100, 200, cfg, np.random.default_rng(seed))
        assert g == sample_geometry(100, 200, cfg, np.random.default_rng(seed))
        assert g.crop_h == min(g.out_h, 64) and g.crop_w == min(g.out_w, 64)
        assert 0 <= g.y0 <= g.out_h - g.crop_h and 0 <= g.x0 <= g.out_w - g.crop_w
        assert abs(g.out_w - 2 * g.out_h) <= 1.5  # aspect kept (up to rounding)
        scales.append(g.out_w / 64)  # the long side fits scale * image_size
        flips += g.flip
        if g.out_h > 64:  # one uniform offset fraction for both axes, as detectron2 draws
            u = g.y0 / (g.out_h - 64)
            assert abs(g.x0 - (g.out_w - 64) * u) <= 1.0 + (g.out_w - 64) / (2 * (g.out_h - 64))
    assert 0.1 - 0.02 <= min(scales) < 0.3 and 1.8 < max(scales) <= 2.0 + 0.02
    assert 100 < flips < 200


def test_cropped_away_instances_are_dropped(tmp_path: Path) -> None:
    from rem_models.engine.augment import augment_sample

    mask = np.zeros((2, 10, 40), dtype=np.uint8)
    mask[0, 2:5, 1:4] = 1  # left
    mask[1, 2:5, 35:39] = 1  # right
    cfg = AugmentConfig(kind="lsj", image_size=10, min_scale=4.0, max_scale=4.0, flip=False)
    kept_left = kept_right = 0
    for seed in range(20):
        _, out, keep = augment_sample(
            np.zeros((10, 40, 3), np.uint8), mask, cfg, np.random.default_rng(seed)
        )
        assert out.shape[0] == keep.sum() and out.shape[1:] == (10, 10)
        kept_left += keep[0]
        kept_right += keep[1]
        assert not keep.all()  # a 10-pixel window of a 40x10 image never holds both
    assert kept_left + kept_right > 0


# ------------------------------------------------------------------------------------------
# sampling


def test_processes_and_accumulation_share_one_global_batch() -> None:
    single = TrainBatchSampler(10, 4, steps=5, seed=3)
    micro = {
        r: list(TrainBatchSampler(10, 4, steps=5, world_size=2, rank=r, grad_accum=2, seed=3))
        for r in (0, 1)
    }
    batches = list(single)
    assert len(batches) == 5 and len(micro[0]) == 10
    for step in range(5):
        parts = micro[0][2 * step : 2 * step + 2] + micro[1][2 * step : 2 * step + 2]
        assert [item for part in parts for item in part] == batches[step]
        assert {s for _, s, _ in batches[step]} == {step}
        assert [slot for _, _, slot in batches[step]] == [0, 1, 2, 3]


def test_each_epoch_visits_every_sample_once() -> None:
    sampler = TrainBatchSampler(6, 3, steps=4, seed=0)
    indices = [i for batch in sampler for i, _, _ in batch]
    assert sorted(indices[:6]) == list(range(6)) and sorted(indices[6:]) == list(range(6))
    assert indices[:6] != indices[6:]  # reshuffled


def test_resuming_sampler_continues_the_stream() -> None:
    whole = list(TrainBatchSampler(7, 2, steps=6, seed=1))
    tail = list(TrainBatchSampler(7, 2, steps=6, start_step=4, seed=1))
    assert tail == whole[4:]
