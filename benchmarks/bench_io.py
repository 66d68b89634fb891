"""Loading a COCO-train-scale instances file: pycocotools ``COCO()`` vs ``rem_core.io.load_coco``.

The file comes from ``rem_core.synth.write_large_json`` (seed 0): shaped like
instances_train2017.json, with 118,287 images, 860,001 annotations (star-shaped polygons of 10-60
points, some in several parts, crowd regions as uncompressed RLE), COCO's categories.

Each loader runs in a fresh interpreter. Time covers the load call and one full cycle collection
after it (rem pauses the collector while loading; the collection it skipped would come soon after
in the caller's code, so it is counted), not interpreter start or imports; CPU time is reported
beside wall time because it is less disturbed by other work on a shared machine. Memory is the
process's peak resident set (``VmHWM``), also given net of the resident set before loading. rem
is measured twice: the load alone (its indexes are lazy) and the load plus building every index
pycocotools builds, which is the like-for-like figure.

Usage: python benchmarks/bench_io.py [--quick] [--repeat N] [--file PATH] [--out DIR]
(REM_BENCH_QUICK=1 is the same as --quick: 5,000 images.)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from script_args import emit, parser, quick_mode

FULL_IMAGES, FULL_ANNOTATIONS = 118_287, 860_001
QUICK_IMAGES = 5_000


def _write_file(path: Path, num_images: int, num_annotations: int) -> None:
    """Generate the file in a child process, so this process stays small."""
    code = (
        "import sys\n"
        "from rem_core.synth import write_large_json\n"
        "write_large_json(sys.argv[1], num_images=int(sys.argv[2]),"
        " num_annotations=int(sys.argv[3]), seed=0)\n"
    )
    _run([sys.executable, "-c", code, str(path), str(num_images), str(num_annotations)])


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
    gc.collect()
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    sizes = [len(coco.imgs), len(coco.anns), len(coco.cats), len(coco.imgToAnns)]
else:
    from rem_core.io import load_coco
    before = rss("VmRSS")
    c0, t0 = cpu(), time.perf_counter()
    coco = load_coco(path)
    if which == "rem+index":
        coco.imgs, coco.anns, coco.cats, coco.img_to_anns, coco.cat_to_imgs
    gc.collect()
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
    quick = quick_mode(quick)
    num_images = QUICK_IMAGES if quick else FULL_IMAGES
    num_annotations = round(FULL_ANNOTATIONS * num_images / FULL_IMAGES)
    with tempfile.TemporaryDirectory(prefix="rem-bench-io-") as tmp:
        generate_s = 0.0
        if file is None:
            path = Path(tmp) / "instances_synthetic.json"
            t0 = time.perf_counter()
            _write_file(path, num_images, num_annotations)
            source = "rem_core.synth.write_large_json(seed=0)"
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
    p = parser(__doc__)
    p.add_argument("--file", type=Path, help="measure this instances file, do not generate")
    p.add_argument("--repeat", type=int, default=1, help="runs per loader (fastest kept)")
    args = p.parse_args()
    emit(main(args.out, quick=args.quick or None, file=args.file, repeat=args.repeat))
