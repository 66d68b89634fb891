"""The drawn synthetic sample: images, exact masks, coarse annotations and scored predictions.

Everything is a function of the seed and the image index (each image has its own random stream),
so a run is byte-for-byte reproducible and the first N images of a larger sample are the same
images. Objects are drawn back to front; an object's exact mask is what stays visible, and objects
hidden too much are not drawn at all, so every drawn object is annotated. Images with index 3, 10,
17, ... (ids 4, 11, 18, ...) are left empty; images with index 1, 19, 28, ... hold one crowd region
(a cluster of small same-category shapes annotated as a single ``iscrowd`` region; about 2% of the
instances).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import orjson

from rem_core import masks
from rem_core.atomic import atomic_write_bytes
from rem_core.errors import RemError
from rem_core.synth.degrade import (
    Degradation,
    apply_to_mask,
    degrade_to_polygons,
    morph,
    random_degradation,
)
from rem_core.synth.render import (
    MAX_CATEGORIES,
    SynthCategory,
    background,
    paint,
    synth_categories,
    to_bgr_uint8,
)
from rem_core.synth.shapes import random_spec, rasterize

GENERATOR_VERSION = 1
DEFAULT_NUM_CATEGORIES = 6
MIN_VISIBLE_FRACTION = 0.35
MIN_VISIBLE_PIXELS = 80
MIN_COARSE_IOU = 0.6


@dataclass(frozen=True)
class SynthSample:
    """Paths of a written sample. ``exact`` and ``coarse`` are COCO instance files over the same
    images and annotation ids; ``predictions`` is a COCO results list (RLE masks, XYWH boxes)."""

    root: Path
    image_dir: Path
    exact: Path
    coarse: Path
    predictions: Path
    num_images: int
    num_annotations: int
    num_predictions: int


@dataclass
class _Object:
    category: SynthCategory
    full: np.ndarray  # (H, W) bool: the whole shape as drawn
    visible: np.ndarray  # (H, W) bool: what is left after later objects cover it
    iscrowd: int


def _is_empty_image(index: int) -> bool:
    return index % 7 == 3


def _has_crowd(index: int) -> bool:
    return index % 9 == 1 and not _is_empty_image(index)


def _crowd_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    side = min(h, w)
    cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(6, 13))):
        r = rng.uniform(0.02, 0.035) * side
        x, y = cx + rng.normal(0, 2.5 * r), cy + rng.normal(0, 1.5 * r)
        mask |= rasterize(random_spec(rng, kind, x, y, r), h, w)
    return mask


def _draw_objects(
    rng: np.random.Generator, index: int, cats: list[SynthCategory], h: int, w: int
) -> list[_Object]:
    """Objects of one image, bottom first, with visibility resolved."""
    if _is_empty_image(index):
        return []
    side = min(h, w)
    candidates: list[tuple[SynthCategory, np.ndarray, int]] = []
    for _ in range(int(rng.integers(3, 8))):
        cat = cats[int(rng.integers(len(cats)))]
        radius = side * float(np.exp(rng.uniform(np.log(0.035), np.log(0.22))))
        cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
        candidates.append((cat, rasterize(random_spec(rng, cat.kind, cx, cy, radius), h, w), 0))
    if _has_crowd(index):
        # On top, so the crowd region is never hidden away.
        cat = cats[int(rng.integers(len(cats)))]
        candidates.append((cat, _crowd_mask(rng, h, w, cat.kind), 1))
    # Resolve occlusion from the top: drop what would be mostly hidden, so that no annotated
    # object is a sliver and every drawn pixel belongs to exactly one annotation.
    covered = np.zeros((h, w), dtype=bool)
    kept: list[_Object] = []
    for cat, full, crowd in reversed(candidates):
        visible = full & ~covered
        n_visible = int(visible.sum())
        if n_visible < MIN_VISIBLE_PIXELS or n_visible < MIN_VISIBLE_FRACTION * full.sum():
            continue
        kept.append(_Object(cat, full, visible, crowd))
        covered |= full
    kept.reverse()
    return kept


def _coarse_polygons(
    rng: np.random.Generator, obj: _Object, h: int, w: int
) -> tuple[list[list[float]], Degradation, float]:
    """Coarse polygons of a non-crowd object with mask IoU in [MIN_COARSE_IOU, 1)."""
    exact = masks.encode(obj.visible)
    area = int(obj.visible.sum())
    for attempt in range(4):
        deg = random_degradation(rng, area, strength=0.5**attempt)
        polys = degrade_to_polygons(obj.visible, deg)
        if polys:
            score = float(masks.iou([masks.to_rle(polys, h, w)], [exact])[0, 0])
            if MIN_COARSE_IOU <= score < 1.0:
                return polys, deg, score
    # Fallback: the outline alone, traced through pixel centres (never identical to the mask).
    deg = Degradation(0, (0, 0), 1.0)
    polys = degrade_to_polygons(obj.visible, deg)
    score = float(masks.iou([masks.to_rle(polys, h, w)], [exact])[0, 0]) if polys else 0.0
    return polys, deg, score


def _predictions(
    rng: np.random.Generator,
    image_id: int,
    objects: list[_Object],
    cats: list[SynthCategory],
    h: int,
    w: int,
) -> list[dict]:
    """Scored detections: perturbed true objects, some duplicates, wrong labels and false
    positives; one false positive shares its score with the first detection (a tie)."""
    found: list[tuple[int, np.ndarray, float]] = []
    for obj in objects:
        if obj.iscrowd:
            found.append((obj.category.id, morph(obj.visible, -1), 0.5))
            continue
        if rng.random() >= 0.9:
            continue  # missed
        area = int(obj.visible.sum())
        mask = apply_to_mask(obj.visible, random_degradation(rng, area, strength=0.6))
        cat_id = obj.category.id
        if rng.random() < 0.05 and len(cats) > 1:
            cat_id = cats[(obj.category.id + int(rng.integers(len(cats) - 1))) % len(cats)].id
        score = round(float(rng.uniform(0.55, 0.99)), 2)
        found.append((cat_id, mask, score))
        if rng.random() < 0.15:
            dup = apply_to_mask(obj.visible, random_degradation(rng, area, strength=2.0))
            found.append((cat_id, dup, round(max(0.01, score - float(rng.uniform(0, 0.3))), 2)))
    side = min(h, w)
    false_positives = []
    for _ in range(int(rng.integers(1, 4))):
        cat = cats[int(rng.integers(len(cats)))]
        radius = side * float(rng.uniform(0.03, 0.12))
        spec = random_spec(rng, cat.kind, rng.uniform(0, w), rng.uniform(0, h), radius)
        score = round(float(rng.uniform(0.05, 0.6)), 2)
        false_positives.append((cat.id, rasterize(spec, h, w), score))
    if found:
        cat_id, mask, _ = false_positives[0]
        false_positives[0] = (cat_id, mask, found[0][2])
    out = []
    for cat_id, mask, score in found + false_positives:
        if not mask.any():
            continue
        rle = masks.encode(mask)
        out.append(
            {
                "image_id": image_id,
                "category_id": cat_id,
                "segmentation": rle,
                "bbox": masks.bbox(rle),
                "score": score,
            }
        )
    return out


def _encode_image(image: np.ndarray, image_format: str) -> bytes:
    bgr = to_bgr_uint8(image)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV only fails here on an unusable build
        raise RuntimeError(f"OpenCV could not encode a {image_format} image")
    return buf.tobytes()


def _check_args(num_images: int, width: int, height: int, num_categories: int, fmt: str) -> None:
    if num_images < 1:
        raise RemError(f"num_images must be at least 1, got {num_images}")
    if width < 64 or height < 64:
        raise RemError(f"images must be at least 64x64 pixels, got {width}x{height}")
    if not 1 <= num_categories <= MAX_CATEGORIES:
        raise RemError(f"num_categories must be 1..{MAX_CATEGORIES}, got {num_categories}")
    if fmt not in ("jpg", "png"):
        raise RemError(f"image_format must be 'jpg' or 'png', got {fmt!r}")


def make_sample(
    out_dir: str | Path,
    num_images: int = 10,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    num_categories: int = DEFAULT_NUM_CATEGORIES,
    image_format: str = "jpg",
    on_image: Callable[[int], None] | None = None,
) -> SynthSample:
    """Draw and write a synthetic sample under ``out_dir``.

    Writes ``images/synth_NNNNNN.<jpg|png>``, ``exact.json`` (exact masks: compressed RLE,
    crowd regions as uncompressed RLE), ``coarse.json`` (the same annotation ids as degraded
    polygons; the degradation of each is listed in ``info.rem_synth.per_annotation``) and
    ``predictions.json``. ``on_image(i)`` is called after image i is written.
    """
    _check_args(num_images, width, height, num_categories, image_format)
    root = Path(out_dir)
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    cats = synth_categories(num_categories)
    h, w = height, width

    images, exact_anns, coarse_anns, per_annotation, predictions = [], [], [], [], []
    ann_id = 0
    for index in range(num_images):
        image_id = index + 1
        rng = np.random.default_rng([seed, index, 0])
        objects = _draw_objects(rng, index, cats, h, w)
        picture = background(rng, h, w)
        for obj in objects:
            paint(picture, obj.full, obj.category.rgb, rng)
        file_name = f"synth_{image_id:06d}.{image_format}"
        atomic_write_bytes(image_dir / file_name, _encode_image(picture, image_format))
        images.append(
            {"id": image_id, "file_name": file_name, "height": h, "width": w, "license": 1}
        )

        coarse_rng = np.random.default_rng([seed, index, 1])
        for obj in objects:
            ann_id += 1
            rle = masks.encode(obj.visible)
            record = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": obj.category.id,
                "area": masks.area(rle),
                "bbox": masks.bbox(rle),
                "iscrowd": obj.iscrowd,
            }
            if obj.iscrowd:
                # COCO keeps crowd regions as uncompressed RLE; the coarse file keeps them as is.
                seg = masks.to_uncompressed(rle)
                exact_anns.append({**record, "segmentation": seg})
                coarse_anns.append({**record, "segmentation": seg})
                continue
            exact_anns.append({**record, "segmentation": rle})
            polys, deg, score = _coarse_polygons(coarse_rng, obj, h, w)
            coarse_rle = masks.to_rle(polys, h, w)
            coarse_anns.append(
                {
                    **record,
                    "segmentation": polys,
                    "area": masks.area(coarse_rle),
                    "bbox": masks.bbox(coarse_rle),
                }
            )
            per_annotation.append({"id": ann_id, **deg.record(), "iou": round(score, 4)})

        pred_rng = np.random.default_rng([seed, index, 2])
        predictions.extend(_predictions(pred_rng, image_id, objects, cats, h, w))
        if on_image is not None:
            on_image(index)

    meta = {
        "generator": "rem_core.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "width": w,
        "height": h,
        "num_categories": num_categories,
    }
    base = {
        "licenses": [
            {
                "id": 1,
                "name": "CC0 1.0",
                "url": "https://creativecommons.org/publicdomain/zero/1.0/",
            }
        ],
        "images": images,
        "categories": [c.record() for c in cats],
    }
    exact = {
        "info": _info("exact masks", {**meta, "variant": "exact"}),
        **base,
        "annotations": exact_anns,
    }
    coarse_meta = {
        **meta,
        "variant": "coarse",
        "degradation": {
            "morph_px": "dilate (>0) or erode (<0) by a disc, |morph| <= max(1, 0.035*sqrt(area))",
            "shift_px": "integer (dx, dy), |d| <= max(1, round(0.7 * that scale))",
            "dp_epsilon_px": "Douglas-Peucker tolerance, 0.8-1.6 x that scale",
            "retry": f"halve the scale until mask IoU >= {MIN_COARSE_IOU}",
        },
        "per_annotation": per_annotation,
    }
    coarse = {"info": _info("coarse annotations", coarse_meta), **base, "annotations": coarse_anns}
    exact_path, coarse_path, pred_path = (
        root / "exact.json",
        root / "coarse.json",
        root / "predictions.json",
    )
    atomic_write_bytes(exact_path, orjson.dumps(exact))
    atomic_write_bytes(coarse_path, orjson.dumps(coarse))
    atomic_write_bytes(pred_path, orjson.dumps(predictions))
    return SynthSample(
        root=root,
        image_dir=image_dir,
        exact=exact_path,
        coarse=coarse_path,
        predictions=pred_path,
        num_images=num_images,
        num_annotations=len(exact_anns),
        num_predictions=len(predictions),
    )


def _info(what: str, meta: dict) -> dict:
    return {
        "description": f"rem synthetic sample: {what}",
        "version": str(GENERATOR_VERSION),
        "year": 2025,
        "contributor": "rem_core.synth",
        "rem_synth": meta,
    }
