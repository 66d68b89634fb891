"""Running per-image jobs on several processes with a progress bar.

Drawing is CPU-bound numpy/OpenCV work on one image at a time, so processes (not threads) share
it out; results come back in job order so every output is the same for any worker count.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from rich.console import Console

from rem_core.progress import progress_bar

J = TypeVar("J")
R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds and shares the loaded file copy-on-write; where it is
    # unavailable (macOS default, Windows) spawn works too because jobs carry all they need.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_jobs(
    fn: Callable[[J], R],
    jobs: Sequence[J],
    *,
    workers: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    label: str = "rendering",
    console: Console | None = None,
) -> list[R]:
    """``[fn(job) for job in jobs]``, on ``workers`` processes (default: all CPUs).

    One worker runs in this process (no pool), which is also what tests and notebooks get for
    small inputs. ``initializer(*initargs)`` sets up per-process state either way.
    """
    workers = available_cpus() if workers is None else max(1, int(workers))
    workers = min(workers, max(1, len(jobs)))
    console = console or Console(stderr=True)
    progress = progress_bar(console, transient=True)
    results: list[R] = []
    with progress:
        task = progress.add_task(label, total=len(jobs))
        if workers == 1:
            if initializer is not None:
                initializer(*initargs)
            for job in jobs:
                results.append(fn(job))
                progress.advance(task)
            return results
        # Small chunks keep both processes busy to the end; larger ones cut IPC for tiny jobs.
        chunksize = max(1, min(16, len(jobs) // (workers * 8)))
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_context(),
            initializer=initializer,
            initargs=initargs,
        ) as pool:
            for result in pool.map(fn, jobs, chunksize=chunksize):
                results.append(result)
                progress.advance(task)
    return results
