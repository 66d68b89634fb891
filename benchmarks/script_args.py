"""What every benchmark script shares: quick mode, and its command line when run on its own.

``benchmarks/run.py`` (``nox -s bench``) calls each script's ``main(out_dir)``; quick mode then
comes from REM_BENCH_QUICK=1, which ``run.py --quick`` sets.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def quick_mode(quick: bool | None) -> bool:
    """``quick`` when given, else whether REM_BENCH_QUICK=1."""
    return os.environ.get("REM_BENCH_QUICK") == "1" if quick is None else quick


def parser(doc: str | None) -> argparse.ArgumentParser:
    """``--quick`` and ``--out`` (default: the repository's bench-results/); add the rest."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    p.add_argument("--quick", action="store_true", help="small sizes (same as REM_BENCH_QUICK=1)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the <area>.json file")
    return p


def emit(result: dict) -> None:
    """Print a script's figures as JSON."""
    print(json.dumps(result, indent=2))
