"""COCO-val-scale evaluation benchmark files: ground truth plus 100 scored RLE detections per image.

Defaults follow COCO val2017 (5,000 images, ~7.4 instances per image over 80 categories). The
detections imitate a detector's output: noisy copies of ground-truth objects (some duplicated,
some mislabelled) ranked high, and false positives filling each image up to 100, ranked low,
with scores rounded to 3 decimals so ties occur as in real result files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from pycocotools import _mask as _coco_mask

from rem_core.atomic import atomic_open, atomic_write_bytes
from rem_core.errors import RemError
from rem_core.synth import coco_like
from rem_core.synth.coco_categories import coco_category_dicts
from rem_core.synth.large import annotation_records

INSTANCES_PER_IMAGE = 7.36
_IMAGES_PER_CHUNK = 250


def _perturbed_copies(
    rng: np.random.Generator, polygons: list[np.ndarray], width: int, height: int, level: np.ndarray
) -> list[np.ndarray]:
    """Noisy copies of flat polygons: scaled about the centroid, shifted and vertex-jittered,
    by an amount growing with ``level`` (one value per polygon)."""
    if not polygons:
        return []
    sizes = np.array([p.size // 2 for p in polygons])
    owner = np.repeat(np.arange(len(polygons)), sizes)
    flat = np.concatenate(polygons)
    x, y = flat[0::2], flat[1::2]
    cx = np.bincount(owner, weights=x) / sizes
    cy = np.bincount(owner, weights=y) / sizes
    extent = np.sqrt(
        np.maximum(
            np.bincount(owner, weights=(x - cx[owner]) ** 2 + (y - cy[owner]) ** 2) / sizes, 1.0
        )
    )
    noise = 0.09 + 0.07 * level
    scale = np.exp(rng.normal(0, noise))
    dx, dy = rng.normal(0, noise * extent), rng.normal(0, noise * extent)
    jitter = (0.5 * noise * extent)[owner]
    nx = cx[owner] + scale[owner] * (x - cx[owner]) + dx[owner] + rng.normal(0, 1, x.size) * jitter
    ny = cy[owner] + scale[owner] * (y - cy[owner]) + dy[owner] + rng.normal(0, 1, y.size) * jitter
    out = np.empty_like(flat)
    out[0::2] = np.round(np.clip(nx, 0, width), 2)
    out[1::2] = np.round(np.clip(ny, 0, height), 2)
    bounds = np.concatenate(([0], np.cumsum(2 * sizes)))
    return [out[bounds[i] : bounds[i + 1]] for i in range(len(polygons))]


def _image_detections(
    rng: np.random.Generator,
    image_id: int,
    width: int,
    height: int,
    gts: list[dict],
    per_image: int,
) -> list[dict]:
    """Up to ``per_image`` detections for one image, best score first."""
    polys: list[np.ndarray] = []
    cats: list[int] = []
    scores: list[float] = []
    plain = [g for g in gts if not g["iscrowd"]]
    if plain:
        copies = rng.choice(4, size=len(plain), p=[0.08, 0.55, 0.27, 0.10])
        src = np.repeat(np.arange(len(plain)), copies)
        level = np.concatenate([np.arange(c) for c in copies]).astype(np.float64)
        polys += _perturbed_copies(
            rng, [plain[i]["segmentation"][0] for i in src], width, height, level
        )
        wrong = rng.random(src.size) < 0.08
        other = coco_like.category_ids(rng, src.size)
        cats += [int(o) if w else plain[i]["category_id"] for i, w, o in zip(src, wrong, other)]
        first = level == 0
        scores += np.where(first, rng.beta(4, 1.5, src.size), rng.beta(2, 3, src.size)).tolist()
    for g in gts:
        if g["iscrowd"] and rng.random() < 0.5:
            # One member of the crowd: a small blob inside the crowd region's box.
            x, y, bw, bh = g["bbox"]
            shape = coco_like.Ellipses(
                np.array([x + bw * rng.uniform(0.3, 0.7)]),
                np.array([y + bh * rng.uniform(0.3, 0.7)]),
                np.array([bw * 0.12]),
                np.array([bh * 0.12]),
                np.array([0]),
            )
            coords, _ = coco_like.star_polygons(rng, shape, np.array([width]), np.array([height]))
            polys.append(coords)
            cats.append(g["category_id"])
            scores.append(float(rng.beta(2, 2)))
    n_fp = max(per_image - len(polys), 0)
    if n_fp:
        w_arr, h_arr = np.full(n_fp, width), np.full(n_fp, height)
        shapes = coco_like.object_ellipses(rng, w_arr, h_arr)
        coords, offsets = coco_like.star_polygons(rng, shapes, w_arr, h_arr)
        polys += [coords[offsets[i] : offsets[i + 1]] for i in range(n_fp)]
        cats += coco_like.category_ids(rng, n_fp).tolist()
        scores += rng.beta(1, 8, n_fp).tolist()
    rles = _coco_mask.frPoly(polys, height, width)
    areas = _coco_mask.area(rles)
    boxes = _coco_mask.toBbox(rles).tolist()
    score_arr = np.round(np.asarray(scores), 3)
    order = [i for i in np.argsort(-score_arr, kind="stable").tolist() if areas[i] > 0]
    return [
        {
            "image_id": image_id,
            "category_id": cats[i],
            "segmentation": {"size": [height, width], "counts": rles[i]["counts"].decode("ascii")},
            "bbox": boxes[i],
            "score": float(score_arr[i]),
        }
        for i in order[:per_image]
    ]


def write_eval_benchmark(
    out_dir: str | Path,
    num_images: int = 5000,
    seed: int = 0,
    detections_per_image: int = 100,
    on_images: Callable[[int, int], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``eval_gt.json`` (COCO instances: polygons, crowd as uncompressed RLE) and
    ``eval_results.json`` (COCO results with compressed RLE masks and XYWH boxes) under
    ``out_dir``; return their paths. ``on_images(done, total)`` reports progress."""
    if num_images < 1 or detections_per_image < 1:
        raise RemError(
            f"need at least one image and one detection per image, got {num_images} images, "
            f"{detections_per_image} detections"
        )
    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 10])
    images, ids, widths, heights = coco_like.image_records(rng, num_images, split="val")
    per_image = coco_like.annotations_per_image(
        rng, num_images, round(INSTANCES_PER_IMAGE * num_images)
    )
    owner = np.repeat(np.arange(num_images), per_image)
    anns = annotation_records(
        np.random.default_rng([seed, 11]), 1, ids[owner], widths[owner], heights[owner], "polygon"
    )
    gt = {
        "info": {
            "description": "rem synthetic COCO-val-scale evaluation benchmark (no images)",
            "version": "1.0",
            "year": 2025,
            "contributor": "rem_core.synth.write_eval_benchmark",
            "rem_synth": {"seed": seed, "variant": "eval-benchmark"},
        },
        "licenses": coco_like.LICENSES,
        "images": images,
        "annotations": anns,
        "categories": coco_category_dicts(),
    }
    gt_path = out_dir / "eval_gt.json"
    atomic_write_bytes(gt_path, orjson.dumps(gt, option=orjson.OPT_SERIALIZE_NUMPY))

    starts = np.concatenate(([0], np.cumsum(per_image)))
    results_path = out_dir / "eval_results.json"
    with atomic_open(results_path, "wb") as f:
        f.write(b"[")
        wrote = False
        for c0 in range(0, num_images, _IMAGES_PER_CHUNK):
            chunk_rng = np.random.default_rng([seed, 12, c0])
            dets: list[dict] = []
            for i in range(c0, min(c0 + _IMAGES_PER_CHUNK, num_images)):
                dets += _image_detections(
                    chunk_rng,
                    int(ids[i]),
                    int(widths[i]),
                    int(heights[i]),
                    anns[starts[i] : starts[i + 1]],
                    detections_per_image,
                )
            body = orjson.dumps(dets)[1:-1]
            if body:
                f.write(b"," + body if wrote else body)
                wrote = True
            if on_images is not None:
                on_images(min(c0 + _IMAGES_PER_CHUNK, num_images), num_images)
        f.write(b"]")
    return gt_path, results_path
