"""Scoring predictions during training: rem-eval when installed, else pycocotools.

rem-eval is optional for rem-models (it is imported only here, and only when an evaluation
runs); its numbers equal pycocotools', so the fallback changes speed, not results.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from rem_core.errors import RemError
from rem_core.io import CocoFile
from rem_core.schemas.eval_report import COCO_STAT_NAMES
from rem_models.engine.categories import CategoryMap
from rem_models.engine.distributed import DistInfo
from rem_models.engine.inference import predict_dataset


def _with_rem_eval(gt: CocoFile, results: list[dict], iou_types: Sequence[str]) -> dict:
    import rem_eval

    report = rem_eval.evaluate(gt, results, list(iou_types))
    return {t: dict(report.metrics[t].stats) for t in iou_types}


def _with_pycocotools(gt: CocoFile, results: list[dict], iou_types: Sequence[str]) -> dict:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = COCO()
    coco.dataset = copy.deepcopy(gt.dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        detections = coco.loadRes(copy.deepcopy(results))
        out = {}
        for iou_type in iou_types:
            evaluator = COCOeval(coco, detections, iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            out[iou_type] = {
                name: (None if v < 0 else float(v))
                for name, v in zip(COCO_STAT_NAMES, evaluator.stats)
            }
    return out


def evaluate_results(
    gt: CocoFile,
    results: list[dict[str, Any]],
    iou_types: Sequence[str] = ("bbox", "segm"),
    *,
    backend: Literal["auto", "rem-eval", "pycocotools"] = "auto",
) -> dict[str, dict[str, float | None]]:
    """COCO metrics per IoU type, e.g. ``{"segm": {"AP": 0.41, "AP50": ...}}`` (fractions).

    ``auto`` uses rem-eval when it is installed, else pycocotools; should rem-eval fail on
    unexpected input, the run goes on with pycocotools and a warning (an evaluation must not
    end a long training run). No detections at all scores 0 everywhere.
    """
    if not results:
        return {t: dict.fromkeys(COCO_STAT_NAMES, 0.0) for t in iou_types}
    if backend == "rem-eval":
        return _with_rem_eval(gt, results, iou_types)
    if backend == "auto":
        try:
            import rem_eval  # noqa: F401
        except ImportError:
            pass
        else:
            try:
                return _with_rem_eval(gt, results, iou_types)
            except RemError:
                raise
            except Exception as exc:
                warnings.warn(
                    f"rem-eval failed ({type(exc).__name__}: {exc}); scoring with pycocotools",
                    RuntimeWarning,
                    stacklevel=2,
                )
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        raise RemError(
            "evaluation needs rem-eval or pycocotools; install one (pip install rem-eval)"
        ) from None
    return _with_pycocotools(gt, results, iou_types)


class Evaluator:
    """Predicts a held-out set and scores it; every process calls, the main one gets metrics."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        gt: CocoFile,
        categories: CategoryMap,
        *,
        iou_types: Sequence[str] = ("bbox", "segm"),
        batch_size: int = 1,
        amp: bool = True,
    ) -> None:
        self.dataset = dataset
        self.gt = gt
        self.categories = categories
        self.iou_types = tuple(iou_types)
        self.batch_size = batch_size
        self.amp = amp

    def __call__(
        self, model: nn.Module, device: torch.device, dist_info: DistInfo
    ) -> dict[str, dict[str, float | None]] | None:
        results = predict_dataset(
            model,
            self.dataset,
            self.categories,
            device,
            batch_size=self.batch_size,
            amp=self.amp,
            dist_info=dist_info,
        )
        if not dist_info.is_main:
            return None
        return evaluate_results(self.gt, results, self.iou_types)
