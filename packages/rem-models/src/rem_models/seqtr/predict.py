"""Referring predictions in the original image frame, and SeqTR's box accuracy.

Each prediction is ``{ref_id, sent_id, bbox (XYWH), segmentation (COCO RLE)}``. Masks are
rasterised from the decoded polygon either at the original size (``mask_frame="original"``,
rem's default) or in the padded network frame (``"input"``: long side ``input_size``, padded to
a multiple of 32 — the frame of SeqTR's own evaluation, the ``legacy-seqtr`` preset of
``rem eval-referring``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_models.seqtr.data import GroundingItem
from rem_models.seqtr.language import encode
from rem_models.seqtr.model import SeqTR
from rem_models.seqtr.sequences import rasterize
from rem_models.seqtr.transforms import collate, fit_scale, load_image, test_transform


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@torch.no_grad()
def predict_items(
    model: SeqTR,
    items: Sequence[GroundingItem],
    image_dir: str | Path,
    vocab: dict[str, int],
    *,
    max_tokens: int,
    batch_size: int = 16,
    all_sentences: bool = False,
    mask_frame: str = "original",
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Predict every item (its first expression, or each one with ``all_sentences``)."""
    model.eval().to(device)
    jobs = [
        (item, k)
        for item in items
        for k in (range(len(item.expressions)) if all_sentences else [0])
    ]
    cache: dict[str, np.ndarray] = {}
    out: list[dict[str, Any]] = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        arrays, scales = [], []
        for item, _ in chunk:
            if item.file_name not in cache:
                cache[item.file_name] = load_image(Path(image_dir) / item.file_name)
            image, _, scale = test_transform(cache[item.file_name], model.input_size)
            arrays.append(image)
            scales.append(scale)
        batch, sizes = collate(arrays)
        ids = torch.tensor([encode(it.expressions[k], vocab, max_tokens) for it, k in chunk])
        results = model(batch.to(device), sizes, ids.to(device))
        for (item, k), res, scale in zip(chunk, results, scales, strict=True):
            record: dict[str, Any] = {
                "ref_id": item.ref_id,
                "sent_id": item.sent_ids[k] if k < len(item.sent_ids) else None,
                "image_id": item.image_id,
            }
            if "box" in res:
                x1, y1, x2, y2 = (res["box"] / scale).tolist()
                x1, x2 = np.clip([x1, x2], 0, item.width)
                y1, y2 = np.clip([y1, y2], 0, item.height)
                record["bbox"] = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
            else:
                polygon = res["polygon"]
                record["polygon"] = polygon
                if mask_frame == "input":
                    record["segmentation"] = _rle(res["mask"])
                else:
                    poly = [v / scale for v in polygon]
                    record["segmentation"] = _rle(rasterize(poly, item.height, item.width))
                m = mask_utils.decode(record["segmentation"]).astype(bool)
                record["bbox"] = _mask_box(m, 1.0 if mask_frame == "original" else scale)
            out.append(record)
    return out


def _mask_box(mask: np.ndarray, scale: float) -> list[float]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return [float(v) / scale for v in (x1, y1, x2 - x1, y2 - y1)]


def box_iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two XYWH boxes (continuous coordinates, no +1)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def box_accuracy(
    predictions: Sequence[dict[str, Any]], items: Sequence[GroundingItem], threshold: float = 0.5
) -> float:
    """SeqTR's DetACC: share of predictions whose box has IoU >= threshold with the GT box."""
    by_ref = {it.ref_id: it for it in items}
    hits = [box_iou_xywh(p["bbox"], by_ref[p["ref_id"]].bbox) >= threshold for p in predictions]
    return float(np.mean(hits)) if hits else 0.0


def mask_ious(predictions: Sequence[dict[str, Any]], items: Sequence[GroundingItem]) -> np.ndarray:
    """Per-prediction mask IoU against the GT mask at the original size (empty union -> 0)."""
    by_ref = {it.ref_id: it for it in items}
    ious = []
    for p in predictions:
        gt = by_ref[p["ref_id"]].decode_mask()
        pm = mask_utils.decode(p["segmentation"]).astype(bool)
        union = np.count_nonzero(pm | gt)
        ious.append(np.count_nonzero(pm & gt) / union if union else 0.0)
    return np.asarray(ious)


def fit_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(h, w) of an image after the test resize."""
    s = fit_scale(height, width, input_size)
    return int(height * s + 0.5), int(width * s + 0.5)


def load_trained(
    checkpoint: str | Path, arch: str | None = None
) -> tuple[SeqTR, dict[str, int], int]:
    """(model, word index, max_tokens) from a checkpoint of a SeqTR training run.

    ``arch``, when given, must be the architecture the checkpoint was saved from.
    """
    from rem_models.checkpoints import build_from_checkpoint, load_checkpoint_safetensors
    from rem_models.seqtr.pipeline import VOCAB_KEY

    stored = load_checkpoint_safetensors(checkpoint)
    if VOCAB_KEY not in stored.metadata or stored.config is None:
        raise RemError(f"checkpoint has no {VOCAB_KEY!r} word list", path=checkpoint)
    if arch is not None and stored.arch != arch:
        raise RemError(f"the checkpoint holds {stored.arch!r}, not {arch!r}", path=checkpoint)
    words = json.loads(stored.metadata[VOCAB_KEY])
    model = build_from_checkpoint(checkpoint)
    max_tokens = int(stored.config["language"]["max_tokens"])
    return model, {w: i for i, w in enumerate(words)}, max_tokens  # type: ignore[return-value]


def predict_referring_run(
    arch: str | None,
    checkpoint: str | Path,
    refs: str | Path,
    out: str | Path,
    *,
    image_dir: str | Path,
    split: str | None = None,
    instances: str | Path | None = None,
    mask_size: Literal["original", "input"] = "original",
    all_sentences: bool = True,
    batch_size: int = 16,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Predict ``split`` of ``refs`` and write the predictions JSON (for ``rem eval-referring``).

    ``rem predict MODEL --refs`` and ``rem seqtr predict``; ``mask_size="input"`` keeps masks
    in SeqTR's padded network frame (the ``legacy-seqtr`` preset). Every expression is
    predicted unless ``all_sentences`` is false (then the first of each ref).
    """
    from rem_core.io import save_json
    from rem_models.seqtr.pipeline import load_items

    model, vocab, max_tokens = load_trained(checkpoint, arch)
    items = load_items(refs, split, instances)
    preds = predict_items(
        model,
        items,
        image_dir,
        vocab,
        max_tokens=max_tokens,
        batch_size=batch_size,
        all_sentences=all_sentences,
        mask_frame=mask_size,
        device=device,
    )
    save_json(out, preds)
    return preds
