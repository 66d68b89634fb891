"""Phase timings, logged at DEBUG level on the ``rem_eval`` logger (``-v`` in the CLI)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

log = logging.getLogger("rem_eval")


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log the wall and CPU seconds a block took."""
    if not log.isEnabledFor(logging.DEBUG):
        yield
        return
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        log.debug(
            "%-28s wall %7.3f s  cpu %7.3f s",
            name,
            time.perf_counter() - t0,
            time.process_time() - c0,
        )
