"""COCO-train-scale instance files (JSON only, no images) for loading and processing benchmarks.

The defaults match COCO train2017: 118,287 images and 860,001 instances over the 80 categories.
Annotations are generated and serialised in chunks (each with its own random stream) and streamed
into one file, so memory stays bounded however large the file gets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from rem_core.atomic import atomic_open
from rem_core.errors import RemError
from rem_core.masks.codec import counts_to_rle
from rem_core.synth import coco_like
from rem_core.synth.coco_categories import coco_category_dicts

SEGMENTATION_FORMATS = ("polygon", "rle", "uncompressed")
CROWD_FRACTION = 0.01
PARTED_FRACTION = 0.08
_CHUNK = 50_000


def annotation_records(
    rng: np.random.Generator,
    first_id: int,
    image_ids: np.ndarray,
    widths: np.ndarray,
    heights: np.ndarray,
    segmentation: str,
) -> list[dict]:
    """COCO annotation records (ids from ``first_id``) for objects on the given per-object
    image ids and sizes; polygon coordinates and RLE counts are NumPy arrays (serialise with
    ``orjson.OPT_SERIALIZE_NUMPY``)."""
    n = image_ids.size
    crowd = rng.random(n) < CROWD_FRACTION
    cats = coco_like.category_ids(rng, n)
    shapes = coco_like.object_ellipses(rng, widths, heights)
    crowd_shapes = coco_like.object_ellipses(rng, widths, heights, min_class=1)
    # Crowd regions are medium or large, like COCO's.
    shapes = shapes.where(crowd, crowd_shapes)
    use_rle = crowd if segmentation == "polygon" else np.ones(n, dtype=bool)
    segs: list[object] = [None] * n
    boxes = np.zeros((n, 4))
    areas = np.zeros(n)
    poly_idx = np.flatnonzero(~use_rle)
    if poly_idx.size:
        coords, offsets = coco_like.star_polygons(
            rng, shapes.take(poly_idx), widths[poly_idx], heights[poly_idx]
        )
        b, a = coco_like.polygon_boxes_and_areas(coords, offsets)
        for j, i in enumerate(poly_idx.tolist()):
            segs[i] = [coords[offsets[j] : offsets[j + 1]]]
        # About 8% of COCO's polygon annotations come in 2-3 parts (an object split by an
        # occluder): add 1-2 smaller parts beside the main outline.
        split = rng.random(poly_idx.size) < PARTED_FRACTION
        owners = np.repeat(np.flatnonzero(split), rng.integers(1, 3, size=int(split.sum())))
        if owners.size:
            main = shapes.take(poly_idx[owners])
            angle = rng.uniform(0, 2 * np.pi, owners.size)
            part = coco_like.Ellipses(
                main.cx + 1.3 * main.rx * np.cos(angle),
                main.cy + 1.3 * main.ry * np.sin(angle),
                0.35 * main.rx,
                0.35 * main.ry,
                np.zeros(owners.size, dtype=np.int64),
            )
            pw, ph = widths[poly_idx[owners]], heights[poly_idx[owners]]
            p_coords, p_offsets = coco_like.star_polygons(rng, part, pw, ph)
            pb, pa = coco_like.polygon_boxes_and_areas(p_coords, p_offsets)
            for k, j in enumerate(owners.tolist()):
                segs[poly_idx[j]].append(p_coords[p_offsets[k] : p_offsets[k + 1]])
                x0, y0 = min(b[j, 0], pb[k, 0]), min(b[j, 1], pb[k, 1])
                x1 = max(b[j, 0] + b[j, 2], pb[k, 0] + pb[k, 2])
                y1 = max(b[j, 1] + b[j, 3], pb[k, 1] + pb[k, 3])
                b[j] = (x0, y0, x1 - x0, y1 - y0)
                a[j] += pa[k]
        boxes[poly_idx], areas[poly_idx] = np.round(b, 2), np.round(a, 4)
    rle_idx = np.flatnonzero(use_rle)
    if rle_idx.size:
        runs = coco_like.column_rles(rng, shapes.take(rle_idx), widths[rle_idx], heights[rle_idx])
        boxes[rle_idx], areas[rle_idx] = runs.boxes, runs.areas
        h_list, w_list = heights[rle_idx].tolist(), widths[rle_idx].tolist()
        for j, i in enumerate(rle_idx.tolist()):
            counts = runs.counts[runs.offsets[j] : runs.offsets[j + 1]]
            if segmentation == "rle" and not crowd[i]:
                segs[i] = counts_to_rle(counts, h_list[j], w_list[j])
            else:
                segs[i] = {"counts": counts, "size": [h_list[j], w_list[j]]}
    return [
        {
            "segmentation": seg,
            "area": area,
            "iscrowd": int(c),
            "image_id": img,
            "bbox": box,
            "category_id": cat,
            "id": first_id + k,
        }
        for k, (seg, area, c, img, box, cat) in enumerate(
            zip(
                segs,
                areas.tolist(),
                crowd.tolist(),
                image_ids.tolist(),
                boxes.tolist(),
                cats.tolist(),
            )
        )
    ]


def write_large_json(
    path: str | Path,
    num_images: int = 118_287,
    num_annotations: int = 860_001,
    seed: int = 0,
    segmentation: str = "polygon",
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a COCO-train-scale instances JSON and return its path.

    ``segmentation``: "polygon" (COCO: star-convex polygons of 10-60 points, 8% of objects in 2-3
    parts, crowd regions as uncompressed RLE), "rle" (compressed RLE, crowd uncompressed) or "uncompressed" (every mask
    as uncompressed RLE, as COCO-ReM stores them). About 1% of instances are crowd and about 1% of
    images have no annotation. ``on_chunk(done, total)`` reports annotation progress.
    """
    if segmentation not in SEGMENTATION_FORMATS:
        raise RemError(
            f"segmentation must be one of {', '.join(SEGMENTATION_FORMATS)}, got {segmentation!r}"
        )
    if num_images < 1 or num_annotations < 0:
        raise RemError(
            "need at least one image and no negative counts, got "
            f"{num_images} images, {num_annotations} annotations"
        )
    path = Path(path)
    rng = np.random.default_rng([seed, 0])
    images, ids, widths, heights = coco_like.image_records(rng, num_images, split="train")
    per_image = coco_like.annotations_per_image(rng, num_images, num_annotations)
    owner = rng.permutation(np.repeat(np.arange(num_images), per_image))
    info = {
        "description": "rem synthetic COCO-scale instances (no images)",
        "version": "1.0",
        "year": 2025,
        "contributor": "rem_core.synth.write_large_json",
        "rem_synth": {"seed": seed, "segmentation": segmentation, "variant": "large"},
    }
    numpy_opt = orjson.OPT_SERIALIZE_NUMPY
    with atomic_open(path, "wb") as f:
        f.write(
            b'{"info":' + orjson.dumps(info) + b',"licenses":' + orjson.dumps(coco_like.LICENSES)
        )
        f.write(b',"images":' + orjson.dumps(images) + b',"annotations":[')
        del images
        wrote = False
        for c, start in enumerate(range(0, num_annotations, _CHUNK)):
            sel = owner[start : start + _CHUNK]
            chunk_rng = np.random.default_rng([seed, 1, c])
            anns = annotation_records(
                chunk_rng, start + 1, ids[sel], widths[sel], heights[sel], segmentation
            )
            body = orjson.dumps(anns, option=numpy_opt)[1:-1]
            if body:
                f.write(b"," + body if wrote else body)
                wrote = True
            if on_chunk is not None:
                on_chunk(start + sel.size, num_annotations)
        f.write(b'],"categories":' + orjson.dumps(coco_category_dicts()) + b"}")
    return path
