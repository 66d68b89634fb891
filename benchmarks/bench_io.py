"""Loading a COCO-train-scale instances file: pycocotools ``COCO()`` vs ``rem_core.io.load_coco``.

The file is synthetic but shaped like instances_train2017.json: 118,287 images, 860,001
annotations, about 99% polygons of 10-60 points (a few split into 2-3 parts), 1% crowd regions as
uncompressed RLE, 80 categories with COCO's ids and a person-heavy mix, COCO-like sizes (about 41%
small, 34% medium, 25% large), coordinates with two decimals. ``rem_core.synth.write_large_json``
is used when it exists; otherwise the generator below.

Each loader runs in a fresh interpreter. Time covers the load call only (not interpreter start or
imports); memory is the process's peak resident set (``VmHWM``), also given net of the resident
set before loading. rem is measured twice: the load alone (indexes are lazy) and the load plus
building every index pycocotools builds, which is the like-for-like figure.

Usage: python benchmarks/bench_io.py [--quick] [--out DIR]   (REM_BENCH_QUICK=1 = --quick)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

FULL_IMAGES, FULL_ANNOTATIONS = 118_287, 860_001
QUICK_IMAGES = 5_000

# COCO's 80 category ids (1..90 with gaps) and their rough share of train annotations.
_COCO_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
_IMAGE_SIZES = [(480, 640), (427, 640), (640, 480), (640, 427), (424, 640), (512, 640), (375, 500)]


def _category_weights(rng: np.random.Generator) -> np.ndarray:
    weights = rng.pareto(1.2, size=len(_COCO_IDS)) + 0.05
    weights[0] = weights.sum() * 0.43  # person: about 30% of all annotations
    return weights / weights.sum()


def _polygon(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int) -> np.ndarray:
    """A star-shaped closed outline of ``n`` points around (cx, cy); flat [x1, y1, x2, y2...]."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.6, 1.0, n)
    xy = np.empty(2 * n)
    xy[0::2] = cx + radii * np.cos(angles)
    xy[1::2] = cy + radii * np.sin(angles)
    return xy


def generate(path: Path, num_images: int, num_annotations: int, seed: int = 0) -> None:
    """Write a COCO-train-shaped instances file (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    sizes = [_IMAGE_SIZES[k] for k in rng.integers(0, len(_IMAGE_SIZES), num_images)]
    image_ids = np.sort(rng.choice(600_000, num_images, replace=False)) + 1
    images = [
        {
            "license": int(rng.integers(1, 9)),
            "file_name": f"{iid:012d}.jpg",
            "coco_url": f"http://images.cocodataset.org/train2017/{iid:012d}.jpg",
            "height": h,
            "width": w,
            "date_captured": "2013-11-14 16:28:13",
            "flickr_url": f"http://farm4.staticflickr.com/3153/{iid}_e3a5c2c6f5_z.jpg",
            "id": int(iid),
        }
        for iid, (h, w) in zip(image_ids, sizes)
    ]
    owner = np.sort(rng.integers(0, num_images, num_annotations))
    cats = rng.choice(_COCO_IDS, size=num_annotations, p=_category_weights(rng))
    # sqrt(area) log-normal: median ~ 45 px gives COCO's small/medium/large split.
    side = np.clip(rng.lognormal(np.log(45.0), 1.05, num_annotations), 2.0, 600.0)
    crowd = rng.random(num_annotations) < 0.01
    parts = rng.choice([1, 2, 3], size=num_annotations, p=[0.9, 0.07, 0.03])
    annotations = []
    for k in range(num_annotations):
        h, w = sizes[owner[k]]
        s = float(min(side[k], 0.9 * min(h, w)))
        cx = float(rng.uniform(s / 2, w - s / 2))
        cy = float(rng.uniform(s / 2, h - s / 2))
        x0, y0 = max(cx - s / 2, 0.0), max(cy - s / 2, 0.0)
        bbox = [round(x0, 2), round(y0, 2), round(min(s, w - x0), 2), round(min(s, h - y0), 2)]
        if crowd[k]:
            # Column-major runs over the box area, as COCO stores crowd regions.
            total = h * w
            runs = rng.integers(1, max(2, int(s)), size=int(rng.integers(20, 200)))
            start = int(round(x0)) * h + int(round(y0))
            counts = [start, *runs.tolist()]
            counts.append(max(total - sum(counts), 0))
            segmentation: object = {"counts": counts, "size": [h, w]}
        else:
            n_parts = int(parts[k])
            segmentation = []
            for p in range(n_parts):
                n = int(rng.integers(10, 61)) if n_parts == 1 else int(rng.integers(5, 30))
                poly = _polygon(rng, cx + p * s * 0.1, cy, s / (2 + p), n)
                poly[0::2] = np.clip(poly[0::2], 0, w)
                poly[1::2] = np.clip(poly[1::2], 0, h)
                segmentation.append(np.round(poly, 2).tolist())
        annotations.append(
            {
                "segmentation": segmentation,
                "area": round(float(s * s * 0.72), 4),
                "iscrowd": int(crowd[k]),
                "image_id": int(image_ids[owner[k]]),
                "bbox": bbox,
                "category_id": int(cats[k]),
                "id": k + 1,
            }
        )
    categories = [
        {"supercategory": f"super{cid // 10}", "id": cid, "name": f"category_{cid}"}
        for cid in _COCO_IDS
    ]
    dataset = {
        "info": {"description": "synthetic COCO-train-scale file", "year": 2017},
        "licenses": [{"url": "http://example.org", "id": i, "name": f"license {i}"} for i in range(1, 9)],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    path.write_bytes(orjson.dumps(dataset))


def _write_file(path: Path, num_images: int, num_annotations: int) -> str:
    """Generate the file in a child process, so this process stays small; returns the source."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "try:\n"
        "    from rem_core.synth import write_large_json\n"
        "except ImportError:\n"
        f"    sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "    from bench_io import generate\n"
        "    generate(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), seed=0)\n"
        "    print('bench_io.generate')\n"
        "else:\n"
        "    write_large_json(sys.argv[1], num_images=int(sys.argv[2]),"
        " num_annotations=int(sys.argv[3]), seed=0)\n"
        "    print('rem_core.synth.write_large_json')\n"
    )
    out = _run([sys.executable, "-c", code, str(path), str(num_images), str(num_annotations)])
    return out.stdout.strip().splitlines()[-1]


# The child: import the loader, note resident memory, time the load, report peak memory.
_CHILD = r"""
import gc, json, resource, sys, time

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

which, path = sys.argv[1], sys.argv[2]
if which == "pycocotools":
    import contextlib, io
    from pycocotools.coco import COCO
    before = rss("VmRSS")
    c0, t0 = cpu(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(path)
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    sizes = [len(coco.imgs), len(coco.anns), len(coco.cats), len(coco.imgToAnns)]
else:
    from rem_core.io import load_coco
    before = rss("VmRSS")
    c0, t0 = cpu(), time.perf_counter()
    coco = load_coco(path)
    if which == "rem+index":
        coco.imgs, coco.anns, coco.cats, coco.img_to_anns, coco.cat_to_imgs
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    sizes = [len(coco.images), len(coco.annotations), len(coco.categories)]
    if which == "rem+index":
        sizes = [len(coco.imgs), len(coco.anns), len(coco.cats), len(coco.img_to_anns)]
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss": rss("VmHWM"), "rss_before": before,
                  "sizes": sizes}))
"""


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return out


def _measure(which: str, path: Path, repeat: int) -> dict:
    """Run one loader ``repeat`` times, each in a fresh interpreter; keep the fastest run.

    The fastest of several runs is the least disturbed by other work on the machine; peak
    memory barely varies between runs.
    """
    runs = []
    for _ in range(repeat):
        out = _run([sys.executable, "-c", _CHILD, which, str(path)])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    best["peak_rss_net"] = best["peak_rss"] - best["rss_before"]
    best["all_seconds"] = [round(r["seconds"], 3) for r in runs]
    return best


def main(
    out_dir: Path, quick: bool | None = None, file: Path | None = None, repeat: int = 1
) -> dict:
    """Run the comparison and write ``out_dir/io.json``; returns the figures.

    ``file``: measure an existing instances file instead of generating one.
    """
    if quick is None:
        quick = os.environ.get("REM_BENCH_QUICK") == "1"
    num_images = QUICK_IMAGES if quick else FULL_IMAGES
    num_annotations = round(FULL_ANNOTATIONS * num_images / FULL_IMAGES)
    with tempfile.TemporaryDirectory(prefix="rem-bench-io-") as tmp:
        generate_s = 0.0
        if file is None:
            path = Path(tmp) / "instances_synthetic.json"
            t0 = time.perf_counter()
            source = _write_file(path, num_images, num_annotations)
            generate_s = time.perf_counter() - t0
        else:
            path, source = Path(file), f"given: {file}"
        runs = {w: _measure(w, path, repeat) for w in ("pycocotools", "rem", "rem+index")}
        size = path.stat().st_size
    coco, rem, full = runs["pycocotools"], runs["rem"], runs["rem+index"]
    if coco["sizes"] != full["sizes"]:
        raise RuntimeError(f"loaders disagree on index sizes: {coco['sizes']} vs {full['sizes']}")
    num_images, num_annotations = coco["sizes"][0], coco["sizes"][1]
    result = {
        "benchmark": "io",
        "quick": quick,
        "file": {
            "images": num_images,
            "annotations": num_annotations,
            "bytes": size,
            "generator": source,
            "generate_seconds": round(generate_s, 1),
        },
        "pycocotools": coco,
        "rem_load": rem,
        "rem_load_and_index": full,
        "ratios": {
            # speedup > 1: rem is faster; peak ratio < 1: rem peaks lower than pycocotools.
            "speedup_load": coco["seconds"] / rem["seconds"],
            "speedup_load_and_index": coco["seconds"] / full["seconds"],
            "cpu_speedup_load_and_index": coco["cpu_seconds"] / full["cpu_seconds"],
            "peak_rss_ratio_load": rem["peak_rss"] / coco["peak_rss"],
            "peak_rss_ratio_load_and_index": full["peak_rss"] / coco["peak_rss"],
        },
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "io.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} images only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "bench-results")
    parser.add_argument("--file", type=Path, help="measure this instances file, do not generate")
    parser.add_argument("--repeat", type=int, default=1, help="runs per loader (fastest kept)")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("REM_BENCH_QUICK") == "1"
    figures = main(args.out, quick=quick, file=args.file, repeat=args.repeat)
    print(json.dumps(figures, indent=2))
