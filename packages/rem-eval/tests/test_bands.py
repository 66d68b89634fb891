"""The RLE string codec and the box-crop decoder agree with pycocotools' decode."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from rem_core.masks import string_to_counts
from rem_eval.bands import crop_of_runs


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 10**6), p=st.floats(0.0, 1.0)
)
def test_runs_and_crops_match_decode(h, w, seed, p):
    rng = np.random.default_rng(seed)
    mask = (rng.random((h, w)) < p).astype(np.uint8)
    if rng.random() < 0.5:  # blocky masks give long runs and multi-character numbers
        mask = np.kron(mask[: max(1, h // 4), : max(1, w // 4)], np.ones((4, 4), np.uint8))
        h, w = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = string_to_counts(rle["counts"])
    assert runs.sum() == h * w
    flat = np.repeat(np.arange(runs.size) % 2, runs).astype(np.uint8)
    assert np.array_equal(flat.reshape(w, h).T, mask)
    crop = crop_of_runs(runs, h)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        assert crop.pix.size == 0
        return
    assert (crop.x0, crop.y0) == (xs.min(), ys.min())
    assert np.array_equal(crop.pix.T, mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def test_large_counts_round_trip():
    mask = np.zeros((2000, 3000), np.uint8)
    mask[5:1990, 7:2900] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = string_to_counts(rle["counts"])
    assert runs.sum() == mask.size and runs[1] == 1985
