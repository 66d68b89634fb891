"""The random numbers of one refinement trial, a pure function of (seed, image, annotation, trial).

The reference drew box noise and prompt points from the global torch RNG, so its output changed
from run to run and with the order work happened in (refine.md §5 #1). Here every trial owns a
NumPy PCG64 stream seeded by ``SeedSequence([tag, seed, image id, annotation id, trial])``. A
trial therefore gets the same numbers whatever the batch size, the sharding or the number of
processes, and a plain per-instance loop can replay them exactly.

Per trial the stream yields, in this order:

* 4 standard normals, the box noise for (x1, y1, x2, y2) before scaling by sigma;
* ``num_points`` uniforms in [0, 1), one per point-prompt round; a point is the pixel of rank
  ``floor(u * n)`` among the n candidate pixels in row-major order.

Drawing the normals first means the point uniforms do not depend on anything but the point index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

_STREAM_TAG = 0x5245_4D31  # "REM1": keeps these streams apart from other users of the seed
_U64 = (1 << 64) - 1


def id_key(value: object) -> int:
    """A non-negative integer for an image or annotation id (ints as is, other ids hashed)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return value & _U64 if value < 0 else value
    if isinstance(value, float) and value.is_integer():
        return id_key(int(value))
    digest = hashlib.sha256(repr(value).encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class TrialDraws:
    """Random numbers for the T trials of one annotation.

    ``normals``: (T, 4) float64 box noise for x1, y1, x2, y2 in units of sigma.
    ``uniforms``: (T, num_points) float64 in [0, 1), one per point-prompt round.
    """

    normals: np.ndarray
    uniforms: np.ndarray


def trial_draws(
    seed: int, image_id: object, ann_id: object, num_trials: int, num_points: int
) -> TrialDraws:
    """Draw the box noise and point uniforms of ``num_trials`` trials of one annotation."""
    normals = np.empty((num_trials, 4), dtype=np.float64)
    uniforms = np.empty((num_trials, num_points), dtype=np.float64)
    base = [_STREAM_TAG, id_key(seed), id_key(image_id), id_key(ann_id)]
    for t in range(num_trials):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*base, t])))
        normals[t] = rng.standard_normal(4)
        uniforms[t] = rng.random(num_points)
    return TrialDraws(normals, uniforms)
