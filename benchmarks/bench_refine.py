"""Stage-1 refinement speed: `rem refine`'s batched runner vs a plain per-instance loop, same run.

The peer is ``packages/rem-refine/tests/plain_refiner.py`` driven the way the reference script
drives SAM: images one after another (read, resize, encode), then every annotation of the image
(crowd included, as the reference did) as one decoder batch of its T trials per round, with the
point sampling on the CPU. Both sides get the same model object, the same seeds and the same
images, and both end with the cleanup and RLE of every mask; model construction is excluded.

No SAM weights can be downloaded here, so the models have random weights: the compute is that of
the real architecture (default ``vit_t`` = MobileSAM on a CPU, ``vit_h`` and ``vit_t`` on a GPU),
the masks are meaningless. Random weights leave logits near zero, where float rounding that
depends on how many prompts share a kernel call can flip a pixel and, through the next point
prompt, a trial. So each case is timed twice:

* ``fp64``: both paths in float64, where rounding cannot reach the masks: the masks must be
  identical (``identical == total``), and this is the speed ratio with identical masks;
* ``fp32`` (and ``bf16`` on CUDA for the batched side): the production precision, with the
  agreement of the two paths' masks reported (fraction identical, mean and min IoU).

Data: the synthetic sample of rem-core (640 x 480 images, ~5 instances each).
``--quick`` / REM_BENCH_QUICK=1 runs 2 instances of 1 image with 2 trials.

Usage: python benchmarks/bench_refine.py [--quick] [--out DIR] [--images N] [--arch A]
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from script_args import emit, parser, quick_mode

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "packages" / "rem-refine" / "tests" / "plain_refiner.py"


def _plain_module():
    spec = importlib.util.spec_from_file_location("plain_refiner", PLAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_run(sam, coco_path: Path, image_dir: Path, cfg, device: str) -> dict[int, np.ndarray]:
    """The reference loop; returns {annotation id: cleaned (H, W) mask} for non-crowd ones."""
    import torch

    from rem_core.io import dumps_json, load_coco
    from rem_refine.box_only import resolve_box_only
    from rem_refine.draws import trial_draws
    from rem_refine.images import find_image, read_rgb
    from rem_refine.preprocess import resize_image, resized_shape, resized_source_mask
    from rem_refine.records import clean_small_regions, mask_fields

    plain = _plain_module()
    coco = load_coco(coco_path)
    box_only, _ = resolve_box_only(coco.categories, cfg.box_only_names)
    dtype = next(sam.mask_decoder.parameters()).dtype
    masks: dict[int, np.ndarray] = {}
    records = []
    order = list(dict.fromkeys(a["image_id"] for a in coco.annotations))
    with torch.inference_mode():
        for image_id in order:
            rec = coco.imgs[image_id]
            pixels = read_rgb(find_image(rec, [image_dir]), (rec["height"], rec["width"]), "apply")
            h, w = pixels.shape[:2]
            shape = resized_shape(h, w)
            x = torch.tensor(resize_image(pixels, shape)).permute(2, 0, 1).to(device, dtype)
            embedding = sam.image_encoder(sam.preprocess(x)[None])
            for ann in coco.img_to_anns[image_id]:
                source = resized_source_mask(ann["segmentation"], h, w, shape)
                points = 0 if ann["category_id"] in box_only else cfg.num_extra_points
                draws = trial_draws(cfg.seed, image_id, ann["id"], cfg.num_trials, points)
                boxes = plain.noisy_boxes(source, draws.normals, cfg.box_clamp)
                mask = plain.refine_instance(
                    sam, embedding, source, boxes, draws.uniforms, (h, w), cfg.fallback_scope
                )
                if ann.get("iscrowd"):
                    continue  # the reference refined crowd too, then kept the original
                mask = clean_small_regions(mask, cfg.min_mask_region_area)
                masks[ann["id"]] = mask
                records.append(mask_fields(mask))
    dumps_json(records)  # the reference also serialises its output
    return masks


def batched_run(sam, coco_path: Path, image_dir: Path, cfg) -> dict[int, np.ndarray]:
    import orjson
    from rich.console import Console

    from rem_core.masks import decode
    from rem_refine.stage1 import run_refine

    run_refine(cfg, console=Console(quiet=True), sam=sam)
    out = orjson.loads(Path(cfg.output).read_bytes())
    crowd = {
        a["id"] for a in orjson.loads(coco_path.read_bytes())["annotations"] if a.get("iscrowd")
    }
    return {
        a["id"]: decode(a["segmentation"]).astype(bool)
        for a in out["annotations"]
        if a["id"] not in crowd
    }


def agreement(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> dict:
    ious = []
    identical = 0
    for key, mask in a.items():
        other = b[key]
        identical += int(np.array_equal(mask, other))
        union = np.logical_or(mask, other).sum()
        ious.append(1.0 if union == 0 else np.logical_and(mask, other).sum() / union)
    return {
        "total": len(a),
        "identical": identical,
        "mean_iou": round(float(np.mean(ious)), 6) if ious else None,
        "min_iou": round(float(np.min(ious)), 6) if ious else None,
    }


def run_case(
    arch: str,
    precision: str,
    device: str,
    sample,
    n_images: int,
    trials: int,
    work: Path,
    max_annotations: int | None = None,
):
    """Time both paths on the first ``n_images`` images of the sample; returns a result row."""
    import orjson
    import torch

    from rem_refine.sam.models import load_sam
    from rem_refine.stage1 import RefineConfig

    plain_mod = _plain_module()
    data = orjson.loads(sample.coarse.read_bytes())
    keep = [
        im["id"]
        for im in data["images"]
        if any(a["image_id"] == im["id"] for a in data["annotations"])
    ]
    keep = set(keep[:n_images])
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    data["annotations"] = data["annotations"][:max_annotations]
    inp = work / f"in-{arch}-{precision}.json"
    inp.write_bytes(orjson.dumps(data))

    torch.manual_seed(0)
    sam = load_sam(arch, None).to(device)
    if precision == "fp64":
        sam = plain_mod.to_float64(sam)
    cfg = RefineConfig(
        input_json=inp,
        output=work / f"out-{arch}-{precision}.json",
        image_dirs=(sample.image_dir,),
        arch=arch,
        num_trials=trials,
        device=device,
        precision="bf16" if precision == "bf16" else "fp32",
        exif="apply",
        progress=False,
        image_batch=4 if device.startswith("cuda") else 1,
        workers=min(8, os.cpu_count() or 1),
    )
    if device.startswith("cuda"):
        # Warm-up, so neither side pays for kernel selection and allocator growth.
        warm = RefineConfig(**{**cfg.__dict__, "output": work / "warm.json"})
        batched_run(sam, inp, sample.image_dir, warm)
        plain_run(sam, inp, sample.image_dir, cfg, device)
    _sync(device)
    t0 = time.perf_counter()
    batched = batched_run(sam, inp, sample.image_dir, cfg)
    _sync(device)
    t_batched = time.perf_counter() - t0
    row = {
        "arch": arch,
        "precision": precision,
        "device": device,
        "images": len(keep),
        "annotations": len(data["annotations"]),
        "num_trials": trials,
        "batched_s": round(t_batched, 3),
        "batched_images_per_s": round(len(keep) / t_batched, 4),
    }
    if precision == "bf16":
        return row, batched
    t0 = time.perf_counter()
    plain = plain_run(sam, inp, sample.image_dir, cfg, device)
    _sync(device)
    t_plain = time.perf_counter() - t0
    row.update(
        plain_s=round(t_plain, 3),
        plain_images_per_s=round(len(keep) / t_plain, 4),
        speedup=round(t_plain / t_batched, 3),
        masks=agreement(plain, batched),
    )
    return row, batched


def main(
    out_dir: Path,
    quick: bool | None = None,
    images: int | None = None,
    archs: list[str] | None = None,
) -> dict:
    import torch

    from rem_core.synth import make_sample

    quick = quick_mode(quick)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if archs is None:
        archs = ["vit_h", "vit_t"] if cuda else ["vit_t"]
    if images is None:
        images = (4 if quick else 50) if cuda else (1 if quick else 2)
    trials = 2 if quick else 10
    max_annotations = 2 if quick else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="rem-bench-refine-") as tmp:
        work = Path(tmp)
        sample = make_sample(work / "sample", num_images=images + images // 6 + 2, seed=0)
        for arch in archs:
            # float64 is slow on a CPU: there the identity check runs on 3 instances.
            fp64_images = min(images, 10) if cuda else 1
            fp64_annotations = max_annotations if cuda else min(max_annotations or 3, 3)
            row, _ = run_case(
                arch, "fp64", device, sample, fp64_images, trials, work, fp64_annotations
            )
            rows.append(row)
            row, fp32 = run_case(
                arch, "fp32", device, sample, images, trials, work, max_annotations
            )
            rows.append(row)
            if cuda:
                row, bf16 = run_case(
                    arch, "bf16", device, sample, images, trials, work, max_annotations
                )
                row["masks_vs_fp32"] = agreement(fp32, bf16)
                rows.append(row)
    result = {
        "area": "refine",
        "what": "stage-1 SAM refinement, images/s: batched runner vs plain per-instance loop",
        "machine": {
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "quick": quick,
        "cases": rows,
        "speedup_fp32": {r["arch"]: r["speedup"] for r in rows if r["precision"] == "fp32"},
        "speedup_identical_masks": {
            r["arch"]: r["speedup"]
            for r in rows
            if r["precision"] == "fp64" and r["masks"]["identical"] == r["masks"]["total"]
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "refine.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--arch", action="append", default=None)
    args = p.parse_args()
    emit(main(args.out, quick=args.quick or None, images=args.images, archs=args.arch))
