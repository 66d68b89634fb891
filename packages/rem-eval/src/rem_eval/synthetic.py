"""COCO-like synthetic ground truth and detections, for parity tests and speed benchmarks.

Real COCO cannot be shipped or downloaded here, so this makes a set with the properties that
drive evaluation cost and the reference's corner cases: polygon GT with a COCO-like
small / medium / large mix (about 41 / 34 / 25 %), about 1 % crowd regions stored as uncompressed
RLE, a skewed category distribution, and scored compressed-RLE detections: jittered copies of
the GT (true positives and duplicates), confusions with other categories, and background false
positives. Scores are rounded so that ties occur. Everything is deterministic given the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

# COCO's 80 category ids (1..90 with gaps), so id -> index mapping is exercised.
COCO_CATEGORY_IDS = [
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
]

IMAGE_SIZES = [(480, 640), (427, 640), (640, 480), (480, 640), (426, 640), (512, 640)]


@dataclass(frozen=True)
class SyntheticSet:
    """A GT dataset dict (COCO instances format) and a results list (COCO results format)."""

    gt: dict
    results: list[dict]


def _star_polygon(
    rng: np.random.Generator, cx: float, cy: float, radius: float, w: int, h: int
) -> list[float]:
    """A random star-shaped polygon around (cx, cy), clipped to the (h, w) image."""
    n = int(rng.integers(6, 20))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    aspect = rng.uniform(0.5, 2.0)
    radii = radius * rng.uniform(0.6, 1.0, n)
    xs = np.clip(cx + radii * np.cos(angles) * math.sqrt(aspect), 0, w - 0.01)
    ys = np.clip(cy + radii * np.sin(angles) / math.sqrt(aspect), 0, h - 0.01)
    return np.round(np.stack([xs, ys], 1).ravel(), 2).tolist()


def _jitter(
    rng: np.random.Generator, poly: list[float], scale: float, w: int, h: int
) -> list[float]:
    """A perturbed copy of a polygon: shifted, rescaled and with noisy vertices."""
    pts = np.asarray(poly).reshape(-1, 2)
    c = pts.mean(0)
    s = rng.uniform(1 - scale, 1 + scale)
    size = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0)
    shift = rng.normal(0, scale * size / 2, 2)
    noise = rng.normal(0, scale * size / 6, pts.shape)
    out = (pts - c) * s + c + shift + noise
    out[:, 0] = np.clip(out[:, 0], 0, w - 0.01)
    out[:, 1] = np.clip(out[:, 1], 0, h - 0.01)
    return np.round(out.ravel(), 2).tolist()


def _radius(rng: np.random.Generator) -> float:
    """Radius giving a COCO-like area mix: ~41 % small, ~34 % medium, ~25 % large."""
    u = rng.random()
    if u < 0.41:
        return float(rng.uniform(3, 20))
    if u < 0.75:
        return float(rng.uniform(20, 60))
    return float(rng.uniform(60, 220))


def _rle_str(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii")}


def make_eval_set(
    num_images: int = 100,
    seed: int = 0,
    *,
    gt_per_image: float = 7.4,
    dets_per_image: int = 100,
    crowd_fraction: float = 0.01,
    score_decimals: int = 3,
    with_bbox: bool = False,
) -> SyntheticSet:
    """Make a synthetic COCO-like GT set and detections (see the module docstring).

    ``with_bbox`` adds XYWH ``bbox`` to each detection (the tight box of its mask).
    """
    rng = np.random.default_rng(seed)
    cat_ids = COCO_CATEGORY_IDS
    # Zipf-like category frequencies, as in COCO where "person" dominates.
    weights = 1.0 / np.arange(1, len(cat_ids) + 1) ** 0.8
    weights /= weights.sum()
    images, annotations, results = [], [], []
    ann_id = 1
    for img_index in range(num_images):
        h, w = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        image_id = 100000 + img_index * 7
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"{image_id}.jpg"})
        n_gt = int(rng.poisson(gt_per_image))
        gts: list[tuple[int, list[float] | None]] = []
        for _ in range(n_gt):
            cat = int(rng.choice(cat_ids, p=weights))
            crowd = rng.random() < crowd_fraction
            r = _radius(rng) * (2.0 if crowd else 1.0)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            poly = _star_polygon(rng, cx, cy, r, w, h)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
            area = int(mask_utils.area(rle))
            if area == 0:
                continue
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            if crowd:
                mask = mask_utils.decode(rle)
                flat = mask.ravel(order="F")
                change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
                bounds = np.concatenate([[0], change, [flat.size]])
                counts = np.diff(bounds).tolist()
                if flat[0] == 1:
                    counts = [0, *counts]
                seg: dict | list = {"size": [h, w], "counts": counts}
            else:
                seg = [poly]
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": seg,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": int(crowd),
                }
            )
            ann_id += 1
            gts.append((cat, None if crowd else poly))
        polys: list[list[float]] = []
        det_cats: list[int] = []
        scores: list[float] = []
        for cat, poly in gts:
            if poly is None:
                continue
            for k in range(int(rng.integers(1, 4))):
                polys.append(_jitter(rng, poly, 0.08 + 0.12 * k, w, h))
                confused = rng.random() < 0.1
                det_cats.append(int(rng.choice(cat_ids, p=weights)) if confused else cat)
                scores.append(float(rng.beta(4, 2 + 2 * k)))
        image_cats = [c for c, _ in gts] or [int(rng.choice(cat_ids, p=weights))]
        while len(polys) < dets_per_image:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            polys.append(_star_polygon(rng, cx, cy, _radius(rng) * 0.7, w, h))
            near = rng.random() < 0.5
            det_cats.append(
                int(rng.choice(image_cats)) if near else int(rng.choice(cat_ids, p=weights))
            )
            scores.append(float(rng.beta(1.2, 5)))
        polys, det_cats, scores = (
            polys[:dets_per_image],
            det_cats[:dets_per_image],
            scores[:dets_per_image],
        )
        rles = mask_utils.frPyObjects(polys, h, w)
        boxes = mask_utils.toBbox(rles) if with_bbox else None
        for j, rle in enumerate(rles):
            det = {
                "image_id": image_id,
                "category_id": det_cats[j],
                "segmentation": _rle_str(rle),
                "score": round(scores[j], score_decimals),
            }
            if boxes is not None:
                det["bbox"] = [float(v) for v in boxes[j]]
            results.append(det)
    categories = [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in cat_ids]
    gt = {
        "info": {"description": "rem-eval synthetic COCO-like set", "version": "1"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return SyntheticSet(gt=gt, results=results)
