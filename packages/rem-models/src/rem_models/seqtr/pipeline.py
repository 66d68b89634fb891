"""The Partial-RES / SeqTR steps as functions: load data, train, predict, sample, select.

Used by ``rem seqtr ...`` (``cli.py``). A trained model is saved as a rem safetensors
checkpoint whose metadata also holds the word list (``seqtr.vocab``), so prediction needs no
other file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rem_core.errors import RemError
from rem_models.seqtr.data import (
    GroundingItem,
    read_refer_items,
    read_seqtr_instances,
    write_seqtr_instances,
)
from rem_models.seqtr.language import build_vocabulary, load_word_vectors
from rem_models.seqtr.model import SeqTR

VOCAB_KEY = "seqtr.vocab"


def is_seqtr_instances(path: Path) -> bool:
    """True for SeqTR's ``{split: [entries]}`` JSON (not a refs pickle or rem referring JSON)."""
    if path.suffix.lower() in (".p", ".pkl", ".pickle"):
        return False
    from rem_core.io import read_json

    data = read_json(path)
    return (
        isinstance(data, dict)
        and "samples" not in data
        and all(isinstance(v, list) for v in data.values())
    )


def load_items(path: str | Path, split: str) -> list[GroundingItem]:
    """Items of ``split`` from SeqTR's instances.json or a refer / rem referring file."""
    path = Path(path)
    if is_seqtr_instances(path):
        return read_seqtr_instances(path, split)
    return read_refer_items(path, split)


def load_all_splits(path: str | Path) -> dict[str, list[GroundingItem]]:
    """Every split of a SeqTR instances.json."""
    from rem_core.io import read_json

    path = Path(path)
    if not is_seqtr_instances(path):
        raise RemError("expected SeqTR's instances.json layout {split: [entries]}", path=path)
    return {split: read_seqtr_instances(path, split) for split in read_json(path)}


def _init_from(model: SeqTR, checkpoint: Path, log: Callable[[str], None]) -> None:
    """Load matching tensors of a rem checkpoint; drop word tables and mismatched shapes.

    Partial-RES starts RES training from the REC model this way (the position table of a box
    model does not fit a contour model, and the word table follows the new vocabulary).
    """
    from rem_models.checkpoints import load_checkpoint_safetensors

    state = load_checkpoint_safetensors(checkpoint).state_dict
    own = model.state_dict()
    kept = {
        k: v
        for k, v in state.items()
        if k in own and k != "lan_enc.embedding.weight" and v.shape == own[k].shape
    }
    model.load_state_dict(kept, strict=False)
    log(f"initialised {len(kept)}/{len(own)} tensors from {checkpoint.name}")


def train_run(
    arch: str,
    data: Path,
    image_dir: Path,
    out: Path,
    *,
    split: str = "train",
    overrides: dict[str, Any] | None = None,
    settings_over: dict[str, Any] | None = None,
    init: Path | None = None,
    vectors: Path | None = None,
    darknet: Path | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Train ``arch`` on ``split`` of ``data``; writes ``out`` (safetensors, EMA weights)."""
    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.registry import get_model, get_model_config
    from rem_models.seqtr.training import TrainSettings, train_seqtr
    from rem_models.seqtr.variants import TRAIN_RECIPES

    items = load_items(data, split)
    if not items:
        raise RemError(f"no {split!r} entries", path=data)
    words = build_vocabulary(e for it in items for e in it.expressions)
    config = get_model_config(arch, **(overrides or {}))
    config = config.model_copy(
        update={"language": config.language.model_copy(update={"vocab_size": len(words)})}
    )
    model = get_model(arch, config)
    if config.task == "mask":
        no_mask = [it.ref_id for it in items if it.mask is None]
        if no_mask:
            raise RemError(f"mask training needs masks; ref {no_mask[0]} has none", path=data)
    if vectors is not None:
        model.lan_enc.load_vectors(load_word_vectors(vectors, words, config.language.embed_dim))
    if darknet is not None:
        from rem_models.seqtr.darknet import load_darknet_weights

        log(f"loaded {load_darknet_weights(model.vis_enc, darknet)} DarkNet convs")
    if init is not None:
        _init_from(model, init, log)
    recipe = dict(TRAIN_RECIPES[config.task])
    recipe.update(settings_over or {})
    fields = set(TrainSettings.__dataclass_fields__)
    unknown = sorted(set(recipe) - fields)
    if unknown:
        raise RemError(f"unknown training settings {unknown}; known: {sorted(fields)}")
    settings = TrainSettings(**recipe)
    vocab = {w: i for i, w in enumerate(words)}
    final, losses = train_seqtr(
        model,
        items,
        image_dir,
        vocab,
        settings,
        max_tokens=config.language.max_tokens,
        progress=progress,
    )
    log(f"trained {len(losses)} steps; last loss {losses[-1]:.4f}")
    return save_checkpoint_safetensors(
        out,
        final.state_dict(),
        config,
        arch=arch,
        metadata={VOCAB_KEY: json.dumps(words), "rem.source": Path(data).name},
    )


def load_trained(checkpoint: Path) -> tuple[SeqTR, dict[str, int]]:
    """A model and its word index from a checkpoint written by :func:`train_run`."""
    from rem_models.checkpoints import build_from_checkpoint, load_checkpoint_safetensors

    meta = load_checkpoint_safetensors(checkpoint).metadata
    if VOCAB_KEY not in meta:
        raise RemError(f"checkpoint has no {VOCAB_KEY!r} word list", path=checkpoint)
    words = json.loads(meta[VOCAB_KEY])
    model = build_from_checkpoint(checkpoint)
    return model, {w: i for i, w in enumerate(words)}  # type: ignore[return-value]


def predict_run(
    checkpoint: Path,
    data: Path,
    image_dir: Path,
    out: Path,
    *,
    split: str,
    mask_frame: str = "original",
    all_sentences: bool = False,
    batch_size: int = 16,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Predict ``split`` and write the predictions JSON (for ``rem eval-referring``)."""
    from rem_core.io import save_json
    from rem_models.seqtr.predict import predict_items

    model, vocab = load_trained(checkpoint)
    items = load_items(data, split)
    preds = predict_items(
        model,
        items,
        image_dir,
        vocab,
        max_tokens=_max_tokens(checkpoint),
        batch_size=batch_size,
        all_sentences=all_sentences,
        mask_frame=mask_frame,
        device=device,
    )
    save_json(out, preds)
    return preds


def _max_tokens(checkpoint: Path) -> int:
    from rem_models.checkpoints import load_checkpoint_safetensors

    return int(load_checkpoint_safetensors(checkpoint).config["language"]["max_tokens"])


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
