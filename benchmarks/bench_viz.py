"""Overlay drawing speed: `rem viz` (rem_viz.render_overlays) on 1 and 2 processes vs the COCO
API's own drawing (pycocotools ``COCO.showAnns`` on a matplotlib figure, saved per image).

Data: synthetic 640x480 JPEG images from ``rem_core.synth.make_sample`` (about 4.5 instances per
image: RLE masks, a few crowd regions). Making thousands of distinct images is slow, so a pool of
distinct images is drawn once and the image records (and file names, via symlinks) repeat it up
to the measured count; every image is still read, drawn, encoded and written. Full mode: 5,000
images (a COCO-val-sized run) from a pool of 200; ``--quick`` / REM_BENCH_QUICK=1: 60 from 20.
When ../shared/data/coco-val2017-30 exists, the same is measured on those real COCO images too
(7-11 instances each, polygons), repeated to 600 records (quick: 60).

Times cover the whole run: reading each image, decoding masks, drawing, JPEG encoding and
writing; not loading the annotation file. CPU time per image (this process plus its workers) is
reported too: on a shared machine wall time also measures the neighbours, CPU time much less. The peer draws the first images only (it is slow) in
one process; ratios compare images per second.

Usage: python benchmarks/bench_viz.py [--quick] [--out DIR]
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from script_args import emit, parser, quick_mode

FULL_IMAGES, FULL_POOL = 5000, 200
QUICK_IMAGES, QUICK_POOL = 60, 20
REAL_FULL, REAL_QUICK = 600, 60
PEER_FULL, PEER_QUICK = 40, 6
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-val2017-30"


def repeat_dataset(src_json: Path, src_images: Path, count: int, work: Path) -> tuple[Path, Path]:
    """A dataset of ``count`` image records cycling over the images of ``src_json``."""
    data = json.loads(src_json.read_text())
    images = sorted(data["images"], key=lambda r: r["id"])
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    image_dir = work / "images"
    image_dir.mkdir(parents=True)
    out_images, out_anns = [], []
    ann_id = 0
    for i in range(count):
        src = images[i % len(images)]
        name = f"img_{i:06d}{Path(src['file_name']).suffix}"
        os.symlink((src_images / src["file_name"]).resolve(), image_dir / name)
        out_images.append({**src, "id": i + 1, "file_name": name})
        for ann in by_image.get(src["id"], []):
            ann_id += 1
            out_anns.append({**ann, "id": ann_id, "image_id": i + 1})
    path = work / "dataset.json"
    path.write_text(json.dumps({**data, "images": out_images, "annotations": out_anns}))
    return path, image_dir


def time_rem(dataset: Path, image_dir: Path, out: Path, workers: int, labels: bool) -> dict:
    from rich.console import Console

    from rem_viz import load_annotation_set, render_overlays, select_images

    aset = load_annotation_set(dataset)
    ids = select_images(aset)
    shutil.rmtree(out, ignore_errors=True)
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    summary = render_overlays(
        aset,
        image_dir,
        out,
        image_ids=ids,
        draw_labels=labels,
        workers=workers,
        console=Console(file=io.StringIO()),
    )
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    assert len(summary.written) == len(ids) and not summary.missing
    shutil.rmtree(out, ignore_errors=True)
    return {
        "images": len(ids),
        "masks": summary.instances_drawn,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(ids) / seconds, 2),
        "cpu_ms_per_image": round(1000 * cpu / len(ids), 2),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the pool's workers).

    On a busy machine wall time measures the neighbours too; CPU time per image does not, and
    ``workers / cpu_per_image`` is what free cores would give.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_peer(dataset: Path, image_dir: Path, out: Path, count: int) -> dict:
    """pycocotools' showAnns over each image in a matplotlib figure, saved as JPEG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(dataset))
    ids = [i for i in sorted(coco.imgs) if coco.imgToAnns[i]][:count]
    out.mkdir(parents=True, exist_ok=True)

    def draw(image_id: int) -> None:
        record = coco.imgs[image_id]
        image = plt.imread(str(image_dir / record["file_name"]))
        fig = plt.figure(figsize=(record["width"] / 100, record["height"] / 100), dpi=100)
        ax = fig.add_axes([0, 0, 1, 1])
        ax.imshow(image)
        ax.axis("off")
        coco.showAnns(coco.imgToAnns[image_id])
        fig.savefig(out / f"{image_id}.jpg", dpi=100)
        plt.close(fig)

    draw(ids[0])  # warm-up: font cache and first-figure costs are not per-image costs
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    for image_id in ids:
        draw(image_id)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    shutil.rmtree(out, ignore_errors=True)
    return {
        "name": "pycocotools COCO.showAnns + matplotlib savefig",
        "images": len(ids),
        "seconds": round(seconds, 3),
        "images_per_s": round(len(ids) / seconds, 2),
        "cpu_ms_per_image": round(1000 * cpu / len(ids), 2),
    }


def scenario(name: str, dataset: Path, image_dir: Path, work: Path, peer_count: int) -> dict:
    one = time_rem(dataset, image_dir, work / "out", 1, False)
    two = time_rem(dataset, image_dir, work / "out", 2, False)
    labels = time_rem(dataset, image_dir, work / "out", 2, True)
    peer = time_peer(dataset, image_dir, work / "peer", peer_count)
    return {
        "data": name,
        "rem_1_process": one,
        "rem_2_processes": two,
        "rem_2_processes_with_labels": labels,
        "peer": peer,
        "speedup_2_vs_1_process": round(two["images_per_s"] / one["images_per_s"], 2),
        "ratio_rem_1_process_vs_peer": round(one["images_per_s"] / peer["images_per_s"], 1),
        "ratio_peer_vs_rem_cpu_per_image": round(
            peer["cpu_ms_per_image"] / one["cpu_ms_per_image"], 1
        ),
        "seconds_for_5000_images_2_processes": round(5000 / two["images_per_s"], 1),
        # What two free cores would give, from CPU time (robust to a busy machine).
        "images_per_s_2_free_cores_from_cpu_time": round(2000 / two["cpu_ms_per_image"], 1),
    }


def main(out_dir: Path, quick: bool | None = None) -> dict:
    quick = quick_mode(quick)
    from rem_core.synth import make_sample

    count, pool = (QUICK_IMAGES, QUICK_POOL) if quick else (FULL_IMAGES, FULL_POOL)
    result: dict = {
        "area": "viz",
        "quick": quick,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        # Other work on the machine slows every figure alike; the load says how busy it was.
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="rem-bench-viz-") as tmp:
        work = Path(tmp)
        sample = make_sample(work / "synth", num_images=pool, seed=0, width=640, height=480)
        dataset, image_dir = repeat_dataset(sample.exact, sample.image_dir, count, work / "synth-x")
        result["synthetic_640x480"] = scenario(
            f"synthetic 640x480, {pool} distinct images repeated to {count}",
            dataset,
            image_dir,
            work / "s",
            PEER_QUICK if quick else PEER_FULL,
        )
        real_json = SHARED / "instances_val2017_30.json"
        if real_json.is_file():
            n = REAL_QUICK if quick else REAL_FULL
            dataset, image_dir = repeat_dataset(real_json, SHARED / "val2017", n, work / "real-x")
            result["coco_val2017_30"] = scenario(
                f"30 real COCO val2017 images repeated to {n}",
                dataset,
                image_dir,
                work / "r",
                PEER_QUICK if quick else PEER_FULL,
            )
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "viz.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    args = parser(__doc__).parse_args()
    emit(main(args.out, quick=args.quick or None))
