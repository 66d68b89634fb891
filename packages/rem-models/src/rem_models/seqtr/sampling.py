"""Partial-RES step 2 input: a deterministic 1/5/10% sample of the training masks.

``sample_mask_split`` keeps every training entry's box and the masks of a seeded random
``ratio`` of them; it writes the ``instances_sample_{r}.json`` equivalent: ``train`` = the
sampled entries (with masks), ``train_unsampled`` = the rest (boxes only, pseudo-labelled in
step 3), other splits unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from rem_core.errors import RemError
from rem_models.seqtr.data import GroundingItem


def sample_indices(count: int, ratio: float, seed: int) -> list[int]:
    """Sorted indices of round(ratio * count) entries (at least 1), chosen by ``seed``."""
    if not 0 < ratio <= 1:
        raise RemError(f"ratio must be in (0, 1], got {ratio}")
    if count == 0:
        return []
    k = max(1, math.floor(ratio * count + 0.5))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(count, size=k, replace=False))


def sample_mask_split(
    splits: Mapping[str, Sequence[GroundingItem]], ratio: float, seed: int, train: str = "train"
) -> dict[str, list[GroundingItem]]:
    """Split ``train`` into masked ``train`` and box-only ``train_unsampled``; others copied."""
    if train not in splits:
        raise RemError(f"no {train!r} split to sample from; splits: {sorted(splits)}")
    items = list(splits[train])
    missing = [it.ref_id for it in items if it.mask is None]
    if missing:
        raise RemError(f"{len(missing)} training entries have no mask (first ref {missing[0]})")
    chosen = set(sample_indices(len(items), ratio, seed))
    out = {k: list(v) for k, v in splits.items() if k != train}
    out[train] = [it for i, it in enumerate(items) if i in chosen]
    out[f"{train}_unsampled"] = [
        dataclasses.replace(it, mask=None) for i, it in enumerate(items) if i not in chosen
    ]
    return out


def ratio_name(ratio: float) -> str:
    """File tag of a ratio as Partial-RES names them: 0.01 -> '0.01'."""
    return f"{ratio:g}"
