"""COCO-style evaluation speed: rem-eval vs faster-coco-eval vs pycocotools, same run.

Data: a COCO-val-scale synthetic set from ``rem_eval.synthetic.make_eval_set`` — 5,000 images
of about 640x480, ~7.4 polygon GT per image over COCO's 80 category ids with a COCO-like
small / medium / large mix and ~1% crowd regions (uncompressed RLE), and 100 scored
compressed-RLE detections per image (jittered GT copies, confusions, background false
positives; scores rounded to 3 decimals so ties occur). ``--quick`` / REM_BENCH_QUICK=1 uses
300 images.

Each (tool, IoU type) runs in a fresh interpreter; the time covers load (GT + results) +
evaluate + accumulate + summarize, not interpreter start or imports. Memory is the peak
resident set: the process's own VmHWM plus the largest child's (rem forks workers; this double
counts pages they share, so it overstates rem). Ratios compare the end-to-end wall times; the
CPU-time ratios (user + system, workers included) are given too, since on a shared machine wall
times depend on the other load (``load_average_at_end``).
The summary numbers of all tools are compared too (rem must equal pycocotools exactly).

Usage: python benchmarks/bench_eval.py [--quick] [--out DIR] [--images N]
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from script_args import emit, parser, quick_mode

FULL_IMAGES = 5000
QUICK_IMAGES = 300
SEED = 2024
DATA_VERSION = 1


def _peak_rss_mb() -> float:
    """This process's VmHWM plus the largest reaped child's max RSS, in MiB."""
    own = 0.0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    own = int(line.split()[1]) / 1024
    except OSError:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own + child


def _cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (rem's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(tool: str, kind: str, gt: str, dt: str) -> None:
    """Run one evaluation and print a JSON line with time, CPU time, memory and stats."""
    import contextlib
    import io

    if tool == "rem":
        from rem_eval import evaluate

        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        report = evaluate(gt, dt, [kind], per_category=False)
        seconds = time.perf_counter() - t0
        stats = report.metrics[kind].reference_stats
    else:
        if tool == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Eval

            extra = {}
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Eval

            extra = {}
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(gt)
            coco_dt = coco_gt.loadRes(dt)
            ev = Eval(coco_gt, coco_dt, kind, **extra)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        seconds = time.perf_counter() - t0
        stats = [float(v) for v in ev.stats[:12]]
    out = {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - c0,
        "peak_rss_mb": _peak_rss_mb(),
        "stats": stats,
    }
    print(json.dumps(out))


def make_data(cache: Path, num_images: int) -> tuple[Path, Path]:
    """Write (or reuse) the synthetic GT and results files."""
    tag = f"v{DATA_VERSION}-n{num_images}-s{SEED}"
    gt_path, dt_path = cache / f"gt-{tag}.json", cache / f"dets-{tag}.json"
    if gt_path.exists() and dt_path.exists():
        return gt_path, dt_path
    import orjson

    from rem_eval.synthetic import make_eval_set

    cache.mkdir(parents=True, exist_ok=True)
    data = make_eval_set(num_images, seed=SEED)
    tmp_gt, tmp_dt = gt_path.with_suffix(".tmp"), dt_path.with_suffix(".tmp")
    tmp_gt.write_bytes(orjson.dumps(data.gt))
    tmp_dt.write_bytes(orjson.dumps(data.results))
    tmp_gt.replace(gt_path)
    tmp_dt.replace(dt_path)
    return gt_path, dt_path


def _run_child(tool: str, kind: str, gt: Path, dt: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, kind, str(gt), str(dt)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    out = json.loads(line)
    out["wall_with_startup"] = time.perf_counter() - t0
    return out


def _mean_runs(a: dict, b: dict) -> dict:
    """Two runs of the same tool: mean time and CPU, larger memory, both times kept."""
    out = dict(b)
    for key in ("seconds", "cpu_seconds", "wall_with_startup"):
        if key in a and key in b:
            out[key] = (a[key] + b[key]) / 2
    out["peak_rss_mb"] = max(a.get("peak_rss_mb", 0), b.get("peak_rss_mb", 0))
    out["runs_seconds"] = [a["seconds"], b["seconds"]]
    return out


def main(out_dir: Path, quick: bool | None = None, num_images: int | None = None) -> dict:
    quick = quick_mode(quick)
    n = num_images or (QUICK_IMAGES if quick else FULL_IMAGES)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The data files (~130 MB) stay out of the repository.
    cache = Path(os.environ.get("REM_BENCH_CACHE", Path(tempfile.gettempdir()) / "rem-bench-eval"))
    t0 = time.perf_counter()
    gt, dt = make_data(cache, n)
    gen_seconds = time.perf_counter() - t0
    timeout = 3600.0
    plan = [
        ("segm", ["rem", "faster-coco-eval", "pycocotools"]),
        ("bbox", ["rem", "faster-coco-eval", "pycocotools"]),
        ("boundary", ["rem", "faster-coco-eval"]),
    ]
    runs: dict[str, dict[str, dict]] = {}
    for kind, tools in plan:
        runs[kind] = {}
        # rem runs before and after its peers and counts as the mean of the two, so that a
        # change in the machine's other load during the peers' long runs favours no one.
        for tool in [*tools, "rem"]:
            res = _run_child(tool, kind, gt, dt, timeout)
            shown = res.get("seconds", res.get("error"))
            print(f"[bench_eval] {kind:8s} {tool:16s} {shown}", flush=True)
            if tool == "rem" and "rem" in runs[kind]:
                first = runs[kind]["rem"]
                if "seconds" in first and "seconds" in res:
                    res = _mean_runs(first, res)
            runs[kind][tool] = res

    def ratio(kind: str, peer: str) -> float | None:
        a, b = runs[kind].get("rem", {}), runs[kind].get(peer, {})
        if "seconds" in a and "seconds" in b:
            return round(b["seconds"] / a["seconds"], 2)
        return None

    def cpu_ratio(kind: str, peer: str) -> float | None:
        a, b = runs[kind].get("rem", {}), runs[kind].get(peer, {})
        if "cpu_seconds" in a and "cpu_seconds" in b:
            return round(b["cpu_seconds"] / a["cpu_seconds"], 2)
        return None

    def same(kind: str, peer: str) -> bool | None:
        a, b = runs[kind].get("rem", {}), runs[kind].get(peer, {})
        if "stats" in a and "stats" in b:
            return a["stats"] == b["stats"]
        return None

    ratios = {
        "segm_vs_faster_coco_eval": ratio("segm", "faster-coco-eval"),
        "segm_vs_pycocotools": ratio("segm", "pycocotools"),
        "bbox_vs_faster_coco_eval": ratio("bbox", "faster-coco-eval"),
        "bbox_vs_pycocotools": ratio("bbox", "pycocotools"),
        "boundary_vs_faster_coco_eval": ratio("boundary", "faster-coco-eval"),
    }
    cpu_ratios = {
        "segm_vs_faster_coco_eval": cpu_ratio("segm", "faster-coco-eval"),
        "segm_vs_pycocotools": cpu_ratio("segm", "pycocotools"),
        "bbox_vs_faster_coco_eval": cpu_ratio("bbox", "faster-coco-eval"),
        "bbox_vs_pycocotools": cpu_ratio("bbox", "pycocotools"),
        "boundary_vs_faster_coco_eval": cpu_ratio("boundary", "faster-coco-eval"),
    }
    goals = {
        "segm_vs_faster_coco_eval": 3.0,
        "segm_vs_pycocotools": 10.0,
        "bbox_vs_faster_coco_eval": 3.0,
        "bbox_vs_pycocotools": 10.0,
        "boundary_vs_faster_coco_eval": 5.0,
    }
    memory_ok = {
        kind: (
            runs[kind]["rem"]["peak_rss_mb"] <= runs[kind]["pycocotools"]["peak_rss_mb"]
            if "peak_rss_mb" in runs[kind].get("rem", {})
            and "peak_rss_mb" in runs[kind].get("pycocotools", {})
            else None
        )
        for kind in ("segm", "bbox")
    }
    result = {
        "area": "eval",
        "quick": quick,
        "data": {
            "images": n,
            "gt_file_mb": round(gt.stat().st_size / 2**20, 1),
            "results_file_mb": round(dt.stat().st_size / 2**20, 1),
            "generation_seconds": round(gen_seconds, 1),
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "ratios": ratios,
        "cpu_time_ratios": cpu_ratios,
        "load_average_at_end": list(os.getloadavg()),
        "goals": goals,
        "goals_met": {k: (v is not None and v >= goals[k]) for k, v in ratios.items()},
        "memory_not_above_pycocotools": memory_ok,
        "stats_equal_pycocotools": {k: same(k, "pycocotools") for k in ("segm", "bbox")},
        "stats_equal_faster_coco_eval": {k: same(k, "faster-coco-eval") for k in runs},
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    for key, value in ratios.items():
        print(f"[bench_eval] ratio {key}: {value} (goal {goals[key]})")
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        sys.exit(0)
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=None)
    args = p.parse_args()
    emit(main(args.out, quick=args.quick or None, num_images=args.images))
