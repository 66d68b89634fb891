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
from collections.abc import Callable, Iterator, Sequence
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
    # One thread per process: the pool is the parallelism, and OpenCV's own pool is not
    # guaranteed to survive a fork.
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
    gc.freeze()
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(min(workers, len(tasks)), initializer=_init_child) as pool:
            out = list(pool.imap(_call, [(fn, t) for t in tasks], chunksize=1))
    finally:
        gc.unfreeze()
        _STATE = None
    return out
