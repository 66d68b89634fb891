"""The Partial-RES / SeqTR data steps as functions: load items, sample masks, select pseudo masks.

Used by ``rem seqtr ...`` (``cli.py``) and the training / prediction runs. A trained model is
a rem safetensors checkpoint whose metadata also holds the word list (``VOCAB_KEY``), so
prediction needs no other file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rem_core.errors import RemError
from rem_models.seqtr.data import (
    GroundingItem,
    read_refer_items,
    read_seqtr_instances,
    write_seqtr_instances,
)

VOCAB_KEY = "seqtr.vocab"


def is_seqtr_instances(path: Path) -> bool:
    """True for SeqTR's ``{split: [entries]}`` JSON, told by content.

    A refs pickle, a rem referring JSON (``samples``) or a COCO file (lists of images and
    annotations without ``expressions``) is not one.
    """
    if path.suffix.lower() in (".p", ".pkl", ".pickle"):
        return False
    from rem_core.io import read_json

    data = read_json(path)
    if not isinstance(data, dict) or "samples" in data or not data:
        return False
    if not all(isinstance(v, list) for v in data.values()):
        return False
    first = next((v[0] for v in data.values() if v), None)
    return first is None or (isinstance(first, dict) and "expressions" in first)


def load_items(
    path: str | Path, split: str | None, instances: str | Path | None = None
) -> list[GroundingItem]:
    """Items of ``split`` from SeqTR's instances.json or a refer / rem referring file.

    ``instances`` is the COCO instances.json of a refer ``refs(*).p`` (default: beside it).
    """
    path = Path(path)
    if is_seqtr_instances(path):
        if split is None:
            raise RemError("SeqTR's instances.json needs a split (--split)", path=path)
        return read_seqtr_instances(path, split)
    return read_refer_items(path, split, instances)


def load_all_splits(path: str | Path) -> dict[str, list[GroundingItem]]:
    """Every split of a SeqTR instances.json."""
    from rem_core.io import read_json

    path = Path(path)
    if not is_seqtr_instances(path):
        raise RemError("expected SeqTR's instances.json layout {split: [entries]}", path=path)
    return {split: read_seqtr_instances(path, split) for split in read_json(path)}


def sample_run(data: Path, out_dir: Path, ratio: float, seed: int) -> Path:
    """Write ``instances_sample_{ratio}.json`` beside nothing else; returns its path."""
    from rem_models.seqtr.sampling import ratio_name, sample_mask_split

    sampled = sample_mask_split(load_all_splits(data), ratio, seed)
    return write_seqtr_instances(out_dir / f"instances_sample_{ratio_name(ratio)}.json", sampled)


def select_run(
    sample_file: Path, predictions: Path, out: Path, *, threshold: float = 0.1
) -> tuple[Path, int, int]:
    """RPP: add the kept pseudo masks of ``train_unsampled`` to ``train``; (path, kept, total).

    ``predictions`` are step-3 predictions in original pixels with ``polygon`` (flat list) per
    ``ref_id``; entries without a prediction are dropped and counted.
    """
    import dataclasses

    from rem_core.io import read_json
    from rem_models.seqtr.rpp import rpp_decision

    splits = load_all_splits(sample_file)
    if "train_unsampled" not in splits:
        raise RemError("no 'train_unsampled' split: not a sample file", path=sample_file)
    preds = read_json(predictions)
    if not isinstance(preds, list):
        raise RemError("expected a list of predictions", path=predictions)
    by_ref: dict[int, Sequence[float]] = {}
    for i, p in enumerate(preds):
        if not isinstance(p, dict) or "ref_id" not in p or "polygon" not in p:
            raise RemError(
                "a prediction needs ref_id and polygon", path=predictions, where=f"[{i}]"
            )
        by_ref[int(p["ref_id"])] = p["polygon"]
    kept = []
    pool = splits["train_unsampled"]
    for item in pool:
        polygon = by_ref.get(item.ref_id)
        if polygon is None:
            continue
        d = rpp_decision(item.ref_id, [polygon], item.bbox, item.height, item.width, threshold)
        if d.keep:
            kept.append(dataclasses.replace(item, mask=[list(map(float, polygon))]))
    out_splits = {k: v for k, v in splits.items() if k != "train_unsampled"}
    out_splits["train"] = [*splits["train"], *kept]
    return write_seqtr_instances(out, out_splits), len(kept), len(pool)
