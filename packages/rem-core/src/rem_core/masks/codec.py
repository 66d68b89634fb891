"""The COCO run-length codec: compressed strings, uncompressed counts and binary masks.

COCO stores a mask of an (H, W) image as run lengths over its pixels in column-major order,
starting with a run of zeros (possibly empty). "Uncompressed" RLE keeps the runs as a list of ints;
"compressed" RLE packs them into an ASCII string (delta against the run two back, then 5-bit
groups with a continuation bit). pycocotools is the reference; compressing runs is left to it (C,
fast), while reading a string back into runs is done here with NumPy because pycocotools offers no
such call and its full-image ``decode`` is several times slower than the NumPy path below.

Every reader validates what the C code trusts blindly: a size that is not two non-negative ints,
characters outside the alphabet, negative runs, or runs that do not add up to H*W raise
:class:`~rem_core.errors.RemError` instead of producing garbage pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import _mask as _coco_mask

from rem_core.errors import RemError

RleDict = dict[str, Any]
"""``{"size": [H, W], "counts": str | list[int]}``; column-major runs starting with zeros."""


def rle_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    """``(H, W)`` of an RLE dict, validated."""
    try:
        size = rle["size"]
        h, w = (int(v) for v in size)
        if any(int(v) != v for v in size):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise RemError(f"RLE 'size' must be [height, width], got {rle.get('size')!r}") from None
    if h < 0 or w < 0:
        raise RemError(f"RLE 'size' must be non-negative, got {[h, w]}")
    return h, w


def is_compressed(rle: Mapping[str, Any]) -> bool:
    """True when ``counts`` is a string (or bytes), i.e. compressed RLE."""
    return isinstance(rle.get("counts"), str | bytes)


def string_to_counts(counts: str | bytes) -> np.ndarray:
    """Unpack a compressed RLE string into its run lengths (int64), exactly as pycocotools does.

    Each number is a little-endian sequence of 6-bit characters offset by 48: 5 value bits plus a
    continuation bit (0x20); the last character's 0x10 bit is the sign. From the fourth number on,
    a number is a delta against the run two positions back (the run of the same colour).
    """
    raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not raw:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise RemError("RLE 'counts' string has characters outside the COCO alphabet ('0'..'o')")
    last = (chars & 0x20) == 0
    if not last[-1]:
        raise RemError("RLE 'counts' string is truncated (its last number is unfinished)")
    ends = np.flatnonzero(last)
    if ends.size == chars.size:
        # Every number fits one character (common for small masks' deltas): 5 bits, sign 0x10.
        values = np.where((chars & 0x10) != 0, (chars & 0x1F) | -32, chars & 0x1F)
    else:
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts + 1
        position = np.arange(chars.size) - np.repeat(starts, lengths)
        values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
        negative = (chars[ends] & 0x10) != 0
        values[negative] |= np.left_shift(np.int64(-1), 5 * lengths[negative])
    runs = values.copy()
    # runs[i] = value[i] + runs[i - 2] for i > 2: two interleaved prefix sums (odd and even runs).
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def rle_counts(rle: Mapping[str, Any]) -> np.ndarray:
    """The run lengths of a compressed or uncompressed RLE as int64, checked against its size."""
    h, w = rle_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, str | bytes):
        runs = string_to_counts(counts)
    elif isinstance(counts, list | tuple | np.ndarray):
        try:
            runs = np.asarray(counts, dtype=np.float64)
        except (TypeError, ValueError):
            raise RemError("RLE 'counts' must be a string or a list of ints") from None
        if runs.ndim != 1 or not np.all(np.isfinite(runs)) or np.any(runs != np.round(runs)):
            raise RemError("RLE 'counts' list must hold whole numbers")
        runs = runs.astype(np.int64)
    else:
        raise RemError(f"RLE 'counts' must be a string or a list of ints, got {type(counts)}")
    if runs.size and runs.min() < 0:
        raise RemError("RLE 'counts' has a negative run length")
    total = int(runs.sum())
    if total != h * w:
        raise RemError(f"RLE 'counts' cover {total} pixels but 'size' {[h, w]} has {h * w}")
    return runs


def counts_to_rle(counts: np.ndarray | list[int], height: int, width: int) -> RleDict:
    """Compressed RLE (counts as str) from run lengths, compressed by pycocotools' own C code."""
    runs = np.ascontiguousarray(counts, dtype=np.uint32)
    out = _coco_mask.frUncompressedRLE([{"size": [height, width], "counts": runs}], height, width)[
        0
    ]
    return {"size": [int(height), int(width)], "counts": out["counts"].decode("ascii")}


def canonical_rle(rle: Mapping[str, Any]) -> RleDict:
    """A validated compressed RLE with str counts, from a compressed or uncompressed RLE dict."""
    h, w = rle_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, str | bytes):
        rle_counts(rle)  # validate: pycocotools would read past a bad string
        text = counts if isinstance(counts, str) else counts.decode("ascii")
        return {"size": [h, w], "counts": text}
    return counts_to_rle(rle_counts(rle), h, w)


def to_uncompressed(rle: Mapping[str, Any]) -> RleDict:
    """``{"size": [H, W], "counts": list[int]}`` with the same runs (as COCO-ReM stores masks)."""
    h, w = rle_size(rle)
    return {"size": [h, w], "counts": rle_counts(rle).tolist()}


def encode(mask: np.ndarray) -> RleDict:
    """Compressed RLE of an (H, W) binary mask (bool or integers; non-zero is foreground)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RemError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    binary = np.asfortranarray(mask != 0, dtype=np.uint8)
    h, w = binary.shape
    out = _coco_mask.encode(binary.reshape(h, w, 1, order="F"))[0]
    return {"size": [h, w], "counts": out["counts"].decode("ascii")}


def _runs_to_mask(runs: np.ndarray, h: int, w: int) -> np.ndarray:
    values = (np.arange(runs.size) & 1).astype(np.uint8)
    return np.repeat(values, runs).reshape(w, h).T


def decode(rle: Mapping[str, Any]) -> np.ndarray:
    """The (H, W) uint8 mask of a compressed or uncompressed RLE (values 0/1).

    The array is a Fortran-ordered view like pycocotools' result; use ``np.ascontiguousarray``
    before handing it to code that needs C order.
    """
    h, w = rle_size(rle)
    return _runs_to_mask(rle_counts(rle), h, w)


def decode_many(rles: list[Mapping[str, Any]]) -> np.ndarray:
    """Decode RLEs of one image into an (N, H, W) uint8 stack in one pass.

    All RLEs must share a size. An empty list needs no size and gives shape (0, 0, 0).
    """
    if not rles:
        return np.zeros((0, 0, 0), dtype=np.uint8)
    h, w = rle_size(rles[0])
    runs, values = [], []
    for i, rle in enumerate(rles):
        if rle_size(rle) != (h, w):
            raise RemError(f"RLE {i} has size {rle_size(rle)}, expected {(h, w)} like RLE 0")
        r = rle_counts(rle)
        runs.append(r)
        values.append((np.arange(r.size) & 1).astype(np.uint8))
    flat = np.repeat(np.concatenate(values), np.concatenate(runs))
    return flat.reshape(len(rles), w, h).transpose(0, 2, 1)
