"""Referring-segmentation metrics: overall IoU, mean IoU and Prec@X, in explicit conventions.

Published numbers come from two codebases that measure differently (eval.md §4), so every
choice is a named option, and two presets reproduce them:

- ``legacy-lavt`` (LAVT ``test.py``): one sample per sentence; GT and prediction at 480x480
  (nearest-neighbour resize as PIL does it, aspect ratio not kept); GT pixels covered by
  exactly one polygon (overlaps of multi-polygon refs dropped); an empty union scores 0;
  shares over all samples.
- ``legacy-seqtr`` (SeqTR): one sample per ref; long side resized to 640 (nearest, as
  cv2/mmcv) and padded to a multiple of 32; GT polygons merged; a GT of several polygons
  counts as crowd in pycocotools' IoU (I / |P|, inflated); Prec@X is the mean of per-batch
  shares (``batch_size``).
- ``default``: original image size, merged polygons, no crowd quirk, empty union scores 0,
  one sample per sentence, global shares.

Predictions are COCO RLE masks keyed by ``ref_id`` (and ``sent_id`` per sentence); they may
be given at the original size or already at the evaluation size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_core.schemas.eval_report import ReferringReport

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class ReferringConfig:
    """One measuring convention (see the module docstring)."""

    resolution: str = "original"  # "original", "square:N" or "letterbox:LONG:MULTIPLE"
    gt_mask: str = "union"  # "union" or "exclusive" (pixels of exactly one polygon)
    crowd_quirk: bool = False
    empty_union: str = "zero"  # "zero", "one" or "skip"
    unit: str = "sentence"  # "sentence" or "ref"
    batch_size: int | None = None
    thresholds: tuple[float, ...] = THRESHOLDS

    def check(self) -> ReferringConfig:
        _parse_resolution(self.resolution)
        if self.gt_mask not in ("union", "exclusive"):
            raise RemError(f"gt_mask must be union or exclusive, got {self.gt_mask!r}")
        if self.empty_union not in ("zero", "one", "skip"):
            raise RemError(f"empty_union must be zero, one or skip, got {self.empty_union!r}")
        if self.unit not in ("sentence", "ref"):
            raise RemError(f"unit must be sentence or ref, got {self.unit!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise RemError(f"batch_size must be >= 1, got {self.batch_size}")
        return self


PRESETS: dict[str, ReferringConfig] = {
    "default": ReferringConfig(),
    "legacy-lavt": ReferringConfig(resolution="square:480", gt_mask="exclusive"),
    "legacy-seqtr": ReferringConfig(
        resolution="letterbox:640:32", crowd_quirk=True, unit="ref", batch_size=64
    ),
}


def _parse_resolution(value: str) -> tuple[str, tuple[int, ...]]:
    parts = value.split(":")
    try:
        if parts[0] == "original" and len(parts) == 1:
            return "original", ()
        if parts[0] == "square" and len(parts) == 2:
            return "square", (int(parts[1]),)
        if parts[0] == "letterbox" and len(parts) == 3:
            return "letterbox", (int(parts[1]), int(parts[2]))
    except ValueError:
        pass
    raise RemError(
        f"resolution must be original, square:N or letterbox:LONG:MULTIPLE, got {value!r}"
    )


def pil_nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output pixel in PIL's NEAREST resize.

    PIL walks the output row adding the scale step to a float64 coordinate that starts at half
    a step, and truncates; the running sum (not (x + 0.5) * scale) is what makes e.g. 640 -> 480
    pick column 5, not 6, for output 4.
    """
    step = size_in / size_out
    coords = np.full(size_out, step)
    coords[0] = step * 0.5
    return np.minimum(np.cumsum(coords).astype(np.int64), size_in - 1)


def resize_square(mask: np.ndarray, n: int) -> np.ndarray:
    """(H, W) -> (n, n) nearest-neighbour, PIL's convention (LAVT resizes with PIL)."""
    h, w = mask.shape
    return mask[pil_nearest_index(h, n)][:, pil_nearest_index(w, n)]


def letterbox_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    """mmcv ``imrescale`` size for a (long_side, long_side) scale: (new h, new w)."""
    scale = min(long_side / max(h, w), long_side / min(h, w))
    return int(h * scale + 0.5), int(w * scale + 0.5)


def letterbox(mask: np.ndarray, long_side: int, multiple: int) -> np.ndarray:
    """Resize (nearest, cv2) so the long side is ``long_side``, then zero-pad bottom / right to
    a multiple of ``multiple`` (SeqTR's Resize + Pad)."""
    import cv2

    h, w = mask.shape
    nh, nw = letterbox_size(h, w, long_side)
    resized = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    ph = int(math.ceil(nh / multiple) * multiple)
    pw = int(math.ceil(nw / multiple) * multiple)
    out = np.zeros((ph, pw), dtype=np.uint8)
    out[:nh, :nw] = resized
    return out


def _to_eval(mask: np.ndarray, config: ReferringConfig) -> np.ndarray:
    kind, args = _parse_resolution(config.resolution)
    if kind == "square":
        return resize_square(mask, args[0])
    if kind == "letterbox":
        return letterbox(mask, args[0], args[1])
    return mask


def _eval_shape(h: int, w: int, config: ReferringConfig) -> tuple[int, int]:
    kind, args = _parse_resolution(config.resolution)
    if kind == "square":
        return args[0], args[0]
    if kind == "letterbox":
        nh, nw = letterbox_size(h, w, args[0])
        m = args[1]
        return int(math.ceil(nh / m) * m), int(math.ceil(nw / m) * m)
    return h, w


def gt_mask(sample: Mapping[str, Any], config: ReferringConfig) -> tuple[np.ndarray, int]:
    """(GT mask at the original size, number of polygons) of a referring sample."""
    h, w = int(sample["height"]), int(sample["width"])
    segm = sample.get("segmentation")
    if segm is None:
        raise RemError("referring sample has no segmentation", where=f"ref {sample.get('ref_id')}")
    if isinstance(segm, Mapping):
        rle = (
            segm
            if isinstance(segm.get("counts"), str | bytes)
            else mask_utils.frPyObjects(dict(segm), h, w)
        )
        return mask_utils.decode(rle).astype(bool), 1
    polys = [list(map(float, p)) for p in segm if len(p) >= 6]
    if not polys:
        return np.zeros((h, w), dtype=bool), 0
    rles = mask_utils.frPyObjects(polys, h, w)
    if config.gt_mask == "exclusive":
        count = np.sum(mask_utils.decode(rles), axis=2)
        return count == 1, len(polys)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool), len(polys)


def _pred_mask(pred: Mapping[str, Any], h: int, w: int) -> np.ndarray:
    segm = pred.get("segmentation")
    if not isinstance(segm, Mapping) or "size" not in segm or "counts" not in segm:
        raise RemError(
            "a prediction needs an RLE 'segmentation'", where=f"ref {pred.get('ref_id')}"
        )
    rle = (
        segm
        if isinstance(segm["counts"], str | bytes)
        else mask_utils.frPyObjects(dict(segm), *segm["size"])
    )
    return mask_utils.decode(rle).astype(bool)


def sample_iou(pred: np.ndarray, gt: np.ndarray, crowd: bool) -> tuple[int, int, float | None]:
    """(I, U, IoU) with U = |P ∨ G|; crowd: pycocotools' I / |P|. IoU None when U == 0."""
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    if union == 0:
        return 0, 0, None
    if crowd:
        area = int(np.count_nonzero(pred))
        return inter, union, (inter / area if inter else 0.0)
    return inter, union, inter / union


def _samples(data: Any, split: str | None) -> list[dict]:
    if isinstance(data, Mapping):
        data = data.get("samples", data.get("refs"))
    if not isinstance(data, list):
        raise RemError(
            "referring ground truth must be a JSON list of samples (or {'samples': [...]})"
        )
    out = [s for s in data if split is None or s.get("split") == split]
    for i, s in enumerate(out):
        for key in ("ref_id", "height", "width"):
            if key not in s:
                raise RemError(f"missing {key!r}", where=f"samples[{i}]")
    return out


def evaluate_referring(
    gt: Any,
    predictions: Any,
    config: ReferringConfig | str = "default",
    *,
    split: str | None = None,
) -> ReferringReport:
    """Score predicted masks against referring ground truth under ``config`` (or a preset)."""
    from rem_core.io import read_json

    if isinstance(config, str):
        if config not in PRESETS:
            raise RemError(f"unknown preset {config!r}; choose from {', '.join(PRESETS)}")
        config = PRESETS[config]
    config = config.check()
    gt_name = str(gt) if isinstance(gt, str | Path) else "<in-memory>"
    pred_name = str(predictions) if isinstance(predictions, str | Path) else "<in-memory>"
    samples = _samples(read_json(gt) if isinstance(gt, str | Path) else gt, split)
    preds = read_json(predictions) if isinstance(predictions, str | Path) else predictions
    if not isinstance(preds, list):
        raise RemError("predictions must be a JSON list of {ref_id, [sent_id], segmentation}")
    by_key: dict[tuple, Mapping] = {}
    for i, p in enumerate(preds):
        if not isinstance(p, Mapping) or "ref_id" not in p:
            raise RemError("a prediction needs 'ref_id'", path=pred_name, where=f"[{i}]")
        key = (p["ref_id"], p.get("sent_id")) if config.unit == "sentence" else (p["ref_id"], None)
        by_key[key] = p

    inters: list[int] = []
    unions: list[int] = []
    ious: list[float] = []
    skipped = 0
    for s in samples:
        h, w = int(s["height"]), int(s["width"])
        g_orig, n_poly = gt_mask(s, config)
        g = _to_eval(g_orig, config)
        eh, ew = _eval_shape(h, w, config)
        if config.unit == "sentence":
            sents = s.get("sentences") or [{}]
            keys = [(s["ref_id"], st.get("sent_id")) for st in sents]
        else:
            keys = [(s["ref_id"], None)]
        for key in keys:
            p = by_key.get(key)
            if p is None and config.unit == "sentence" and len(keys) == 1:
                p = by_key.get((s["ref_id"], None))
            if p is None:
                raise RemError(
                    f"no prediction for ref {key[0]}"
                    + (f" sentence {key[1]}" if key[1] is not None else ""),
                    path=pred_name,
                )
            ph, pw = (int(v) for v in p["segmentation"]["size"])
            pm = _pred_mask(p, ph, pw)
            if (ph, pw) == (eh, ew):
                pass
            elif (ph, pw) == (h, w):
                pm = _to_eval(pm, config).astype(bool)
            else:
                raise RemError(
                    f"prediction size {[ph, pw]} is neither the image size {[h, w]} nor the "
                    f"evaluation size {[eh, ew]}",
                    path=pred_name,
                    where=f"ref {key[0]}",
                )
            inter, union, iou = sample_iou(pm, g.astype(bool), config.crowd_quirk and n_poly > 1)
            if iou is None:
                if config.empty_union == "skip":
                    skipped += 1
                    continue
                iou = 1.0 if config.empty_union == "one" else 0.0
            inters.append(inter)
            unions.append(union)
            ious.append(iou)
    n = len(ious)
    arr = np.asarray(ious, dtype=np.float64)
    prec: dict[str, float | None] = {}
    for t in config.thresholds:
        hit = arr >= t
        if n == 0:
            prec[f"{t:g}"] = None
        elif config.batch_size:
            b = config.batch_size
            prec[f"{t:g}"] = float(np.mean([hit[i : i + b].mean() for i in range(0, n, b)]))
        else:
            prec[f"{t:g}"] = float(hit.mean())
    total_u = sum(unions)
    return ReferringReport(
        ground_truth=gt_name,
        predictions=pred_name,
        num_samples=n,
        num_skipped=skipped,
        oiou=(sum(inters) / total_u) if total_u else None,
        miou=float(arr.mean()) if n else None,
        precision_at=prec,
        config=asdict(config),
    )


def config_from_options(preset: str, **overrides: Any) -> ReferringConfig:
    """A preset with some fields replaced (None leaves a field as the preset has it)."""
    if preset not in PRESETS:
        raise RemError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[preset], **changes).check()


__all__ = ["PRESETS", "ReferringConfig", "config_from_options", "evaluate_referring"]
