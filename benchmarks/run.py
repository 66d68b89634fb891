"""Run every benchmark script (benchmarks/bench_*.py) and collect their figures.

Each script exposes ``main(out_dir: Path) -> dict`` and writes ``out_dir/<area>.json``. This runner
adds the machine description and writes ``bench-results/SUMMARY.md``.

    python benchmarks/run.py [--quick] [--only io,eval] [--out bench-results]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", default="", help="comma-separated areas, e.g. io,eval")
    parser.add_argument("--out", type=Path, default=HERE.parent / "bench-results")
    args = parser.parse_args()
    if args.quick:
        os.environ["REM_BENCH_QUICK"] = "1"
    only = {a for a in args.only.split(",") if a}
    args.out.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        area = script.stem.removeprefix("bench_")
        if only and area not in only:
            continue
        print(f"== {area} ==", flush=True)
        start = time.perf_counter()
        try:
            results[area] = load(script).main(args.out)
        except Exception:
            traceback.print_exc()
            failed.append(area)
            continue
        print(f"== {area} done in {time.perf_counter() - start:.1f} s ==", flush=True)

    lines = ["# Benchmark results", "", f"Machine: `{json.dumps(machine())}`", ""]
    lines += [f"Quick mode: {args.quick}", ""]
    for area, figures in results.items():
        lines += [f"## {area}", "", "```json", json.dumps(figures, indent=2), "```", ""]
    if failed:
        lines += ["## failed", "", ", ".join(failed), ""]
    (args.out / "SUMMARY.md").write_text("\n".join(lines))
    print(f"wrote {args.out / 'SUMMARY.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
