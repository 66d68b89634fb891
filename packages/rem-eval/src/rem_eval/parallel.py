"""A small fork-based process pool: workers read the already-loaded tables instead of
receiving pickled copies.

The tables (hundreds of thousands of detection dicts) are set as module state before the pool
forks, so a task is just a pair of offsets and only small NumPy results travel back. The
garbage collector is frozen around the fork so that children do not copy every page they
would otherwise scan. Where fork is unavailable (Windows, macOS defaults) tasks run in-process.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_STATE: Any = None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of records are built and read.

    Evaluation makes no reference cycles worth collecting, but each full collection walks
    every live dict of a half-million-detection results list, several times per second.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def default_workers() -> int:
    """Worker processes to use: ``$REM_EVAL_WORKERS``, else the CPUs this process may use
    (at most 8)."""
    env = os.environ.get("REM_EVAL_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _init_child() -> None:
    # One thread per process: the pool is the parallelism. When the parent had OpenCV loaded
    # it already set one thread before forking (changing it here, with the parent's pool
    # threads missing in the child, deadlocks); otherwise a fresh import is safe to set.
    if "cv2" not in sys.modules:
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass


def _call(args: tuple[Callable, tuple]) -> Any:
    fn, task = args
    return fn(_STATE, *task)


def run_tasks(
    fn: Callable[..., Any], state: Any, tasks: Sequence[tuple], workers: int
) -> list[Any]:
    """``[fn(state, *task) for task in tasks]``, spread over ``workers`` forked processes."""
    global _STATE
    if workers <= 1 or len(tasks) <= 1 or "fork" not in mp.get_all_start_methods():
        return [fn(state, *task) for task in tasks]
    _STATE = state
    cv2 = sys.modules.get("cv2")
    cv2_threads = cv2.getNumThreads() if cv2 is not None else None
    if cv2 is not None:
        cv2.setNumThreads(1)  # stop OpenCV's pool before forking (see _init_child)
    gc.freeze()
    try:
        # concurrent.futures notices a worker that dies (e.g. killed for memory) and raises,
        # where multiprocessing.Pool would wait forever.
        with ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=mp.get_context("fork"),
            initializer=_init_child,
        ) as pool:
            out = list(pool.map(_call, [(fn, t) for t in tasks]))
    finally:
        gc.unfreeze()
        _STATE = None
        if cv2 is not None and cv2_threads is not None:
            cv2.setNumThreads(cv2_threads)
    return out
