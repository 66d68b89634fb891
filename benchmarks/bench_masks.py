"""Mask operations on COCO-val-like data: rem_core.masks vs the reference implementations.

Data: ``rem_core.synth.write_eval_benchmark`` (640x480-ish images, ~7.4 ground truths and 100
RLE detections per image). Measured per image, single process, on the same RLEs:

- decode: ``masks.decode_many`` vs ``pycocotools.mask.decode`` of the image's list of RLEs;
- boundary: ``masks.boundary_rles`` vs boundary-iou-api's recipe (pycocotools decode, 1-pixel
  zero pad, ``cv2.erode`` 3x3 with ``iterations=d``, crop, subtract, pycocotools encode); every
  result is checked to be identical;
- polygons to RLE: ``masks.to_rles`` vs pycocotools ``frPyObjects`` + ``merge`` per annotation.

Usage: python benchmarks/bench_masks.py [--quick] [--out DIR]   (REM_BENCH_QUICK=1 = --quick)
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import orjson
import pycocotools.mask as coco_mask
from script_args import emit, parser, quick_mode

from rem_core import masks
from rem_core.synth import write_eval_benchmark

FULL_IMAGES, QUICK_IMAGES = 500, 40


def _reference_boundary(rle: dict, ratio: float = 0.02) -> dict:
    mask = coco_mask.decode(rle)
    h, w = mask.shape
    d = max(1, round(ratio * np.sqrt(h**2 + w**2)))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1 : h + 1, 1 : w + 1]
    out = coco_mask.encode(np.asfortranarray(mask - eroded))
    return {"size": [h, w], "counts": out["counts"].decode("ascii")}


def _timed(fn, groups) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(g) for g in groups]
    return time.perf_counter() - t0, out


def main(out_dir: Path, quick: bool | None = None) -> dict:
    quick = quick_mode(quick)
    num_images = QUICK_IMAGES if quick else FULL_IMAGES
    warnings.filterwarnings("ignore", message="__array__ implementation")
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = write_eval_benchmark(Path(tmp), num_images=num_images, seed=0)
        gt = orjson.loads(gt_path.read_bytes())
        dets = orjson.loads(res_path.read_bytes())
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    polys_by_image: dict[int, list] = defaultdict(list)
    for ann in gt["annotations"]:
        if isinstance(ann["segmentation"], list):
            polys_by_image[ann["image_id"]].append(ann["segmentation"])
    rles_by_image: dict[int, list] = defaultdict(list)
    for det in dets:
        rles_by_image[det["image_id"]].append(det["segmentation"])
    rle_groups = list(rles_by_image.values())
    n_masks = sum(len(g) for g in rle_groups)

    t_dec_ref, ref_stacks = _timed(lambda g: coco_mask.decode(g), rle_groups)
    t_dec_rem, rem_stacks = _timed(masks.decode_many, rle_groups)
    assert all(np.array_equal(np.moveaxis(a, 2, 0), b) for a, b in zip(ref_stacks, rem_stacks))
    del ref_stacks, rem_stacks

    t_b_ref, ref_b = _timed(lambda g: [_reference_boundary(r) for r in g], rle_groups)
    t_b_rem, rem_b = _timed(masks.boundary_rles, rle_groups)
    assert ref_b == rem_b, "boundary bands differ from the reference recipe"

    poly_groups = [(sizes[i], g) for i, g in polys_by_image.items()]
    n_polys = sum(len(g) for _, g in poly_groups)

    def coco_polys(item):
        (h, w), group = item
        return [
            coco_mask.merge(coco_mask.frPyObjects(p, h, w))["counts"].decode("ascii") for p in group
        ]

    t_p_ref, ref_p = _timed(coco_polys, poly_groups)
    t_p_rem, rem_p = _timed(
        lambda item: [r["counts"] for r in masks.to_rles(item[1], *item[0])], poly_groups
    )
    assert ref_p == rem_p

    figures = {
        "benchmark": "masks",
        "quick": quick,
        "machine": platform.platform(),
        "images": num_images,
        "detection_masks": n_masks,
        "gt_polygon_annotations": n_polys,
        "decode_us_per_mask": {
            "pycocotools": 1e6 * t_dec_ref / n_masks,
            "rem": 1e6 * t_dec_rem / n_masks,
        },
        "decode_speedup": t_dec_ref / t_dec_rem,
        "boundary_us_per_mask": {
            "reference": 1e6 * t_b_ref / n_masks,
            "rem": 1e6 * t_b_rem / n_masks,
        },
        "boundary_speedup": t_b_ref / t_b_rem,
        "boundary_identical": True,
        "polygon_to_rle_us": {
            "pycocotools": 1e6 * t_p_ref / n_polys,
            "rem": 1e6 * t_p_rem / n_polys,
        },
        "polygon_to_rle_ratio": t_p_ref / t_p_rem,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "masks.json").write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    args = parser(__doc__).parse_args()
    emit(main(args.out, quick=args.quick or None))
