"""Evaluation reports: what `rem eval` prints and writes, and what rem-eval's API returns.

Metrics are fractions in [0, 1] (not percent). A metric the reference reports as -1 (no ground
truth in that slice) is ``None`` in ``stats``; ``reference_stats`` keeps the reference's own list
with its -1 values, so a report can be checked number for number against pycocotools or lvis-api.
The full precision / recall / scores arrays are kept in memory on the Python object (see
:meth:`IouTypeMetrics.array`) and written to JSON only when asked for (``arrays``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

EvalIouType = Literal["segm", "bbox", "boundary"]
EvalProtocol = Literal["coco", "lvis", "voc"]

# The names of pycocotools' 12 ``COCOeval.stats``, in its order: the keys of a COCO report's
# ``stats`` and of ``reference_stats``.
COCO_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


class CategoryMetrics(BaseModel):
    """One category's row of the per-category table (area "all", the largest maxDets)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    ap: float | None = Field(description="AP@[.5:.95]; None when the category has no GT")
    ap50: float | None = None
    ap75: float | None = None
    num_gt: int = Field(description="non-ignored ground truths (area 'all')")
    num_det: int = Field(description="detections taking part in the evaluation")
    frequency: Literal["r", "c", "f"] | None = None
    ap_at: dict[str, float | None] | None = Field(
        None, description="VOC protocol: AP at each IoU threshold, keyed like stats (AP50...)"
    )


class MetricArrays(BaseModel):
    """The accumulated arrays as nested lists; -1 marks slices without ground truth.

    COCO: precision (T, R, K, A, M), recall (T, K, A, M), scores (T, R, K, A, M).
    LVIS: precision (T, R, K, A), recall (T, K, A); no scores.
    """

    model_config = ConfigDict(extra="forbid")

    precision: list
    recall: list
    scores: list | None = None


class IouTypeMetrics(BaseModel):
    """The metrics of one IoU type (segm, bbox or boundary) under one protocol (COCO, LVIS, or
    VOC: the PASCAL devkit's AP per IoU threshold, ``stats`` = ``{"AP50": ...}``, no AR)."""

    model_config = ConfigDict(extra="forbid")

    iou_type: EvalIouType
    protocol: EvalProtocol = "coco"
    stats: dict[str, float | None] = Field(
        description="named metrics (AP, AP50, AP75, AP80..AP95, APs, APm, APl, AR1..., APr...)"
    )
    reference_stats: list[float] = Field(
        description="the reference's summary in its order, -1 kept (COCOeval.stats or LVIS results)"
    )
    reference_stat_names: list[str]
    per_category: list[CategoryMetrics] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    arrays: MetricArrays | None = None
    seconds: float | None = None

    _arrays: dict[str, Any] = PrivateAttr(default_factory=dict)

    def array(self, name: Literal["precision", "recall", "scores"]) -> Any:
        """The in-memory numpy array (precision, recall or scores) this report was made from."""
        if name in self._arrays:
            return self._arrays[name]
        if self.arrays is not None and getattr(self.arrays, name) is not None:
            import numpy as np

            return np.asarray(getattr(self.arrays, name), dtype=np.float64)
        raise KeyError(f"no {name} array in this report")


class EvalReport(BaseModel):
    """One results file evaluated against one ground truth, for one or more IoU types."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    ground_truth: str
    results: str
    num_images: int
    num_categories: int
    num_ground_truth: int
    num_detections: int
    metrics: dict[str, IouTypeMetrics]
    warnings: list[str] = Field(default_factory=list)
    created_by: str | None = None


class EvalComparison(BaseModel):
    """Reports shown side by side: one results file against several ground truths (e.g.
    COCO-2017 and COCO-ReM), or several results (``results`` then names them) against one."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    results: str
    reports: list[EvalReport]


class ReferringReport(BaseModel):
    """Referring-segmentation metrics (fractions in [0, 1]) under one convention.

    ``oiou`` = sum of intersections / sum of unions; ``miou`` = mean per-sample IoU;
    ``precision_at["0.5"]`` = share of samples with IoU >= 0.5 (or, with ``batch_size`` set in
    ``config``, the mean of per-batch shares, as SeqTR reports it).
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    ground_truth: str
    predictions: str
    num_samples: int
    num_skipped: int = 0
    oiou: float | None
    miou: float | None
    precision_at: dict[str, float | None]
    config: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    created_by: str | None = None
