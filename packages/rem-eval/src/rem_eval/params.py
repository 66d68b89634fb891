"""Evaluation parameters, with pycocotools' and lvis-api's defaults to the last bit.

The threshold arrays are made with the same ``np.linspace`` calls as the references: element 8
of ``iou_thrs`` is 0.8999999999999999 and ten recall thresholds sit one ulp above k/100. Using
exact decimals instead changes results whenever a recall equals such a value (eval.md §1.8).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from rem_core.errors import RemError

IouType = Literal["segm", "bbox", "boundary"]
Protocol = Literal["coco", "lvis"]
IOU_TYPES: tuple[IouType, ...] = ("segm", "bbox", "boundary")

AREA_ALL = [0.0**2, 1e5**2]
DEFAULT_AREA_RNG = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
DEFAULT_AREA_LBL = ["all", "small", "medium", "large"]
LVIS_MAX_DETS = 300
DEFAULT_DILATION_RATIO = 0.02


def default_iou_thrs() -> np.ndarray:
    """[.5:.05:.95] exactly as pycocotools builds it (linspace, not arange)."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def default_rec_thrs() -> np.ndarray:
    """[0:.01:1] exactly as pycocotools builds it."""
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass
class EvalParams:
    """What to evaluate and how; field meanings follow pycocotools' ``Params``.

    ``img_ids`` / ``cat_ids`` of ``None`` mean every image / category of the ground truth.
    ``max_dets`` is per image *and category* for COCO (sorted before use); for LVIS it is one
    number, the cap per image across categories applied when results are loaded.
    ``area_rng`` bounds are inclusive at both ends (area exactly 1024 is small and medium).
    """

    iou_type: IouType = "segm"
    protocol: Protocol = "coco"
    iou_thrs: np.ndarray = field(default_factory=default_iou_thrs)
    rec_thrs: np.ndarray = field(default_factory=default_rec_thrs)
    max_dets: list[int] = field(default_factory=lambda: [1, 10, 100])
    area_rng: list[list[float]] = field(default_factory=lambda: [list(r) for r in DEFAULT_AREA_RNG])
    area_rng_lbl: list[str] = field(default_factory=lambda: list(DEFAULT_AREA_LBL))
    use_cats: bool = True
    img_ids: list[int] | None = None
    cat_ids: list[int] | None = None
    dilation_ratio: float = DEFAULT_DILATION_RATIO

    @classmethod
    def lvis(cls, iou_type: IouType = "segm", **kw) -> EvalParams:
        """lvis-api defaults: 300 detections per image, no maxDets axis."""
        kw.setdefault("max_dets", [LVIS_MAX_DETS])
        return cls(iou_type=iou_type, protocol="lvis", **kw)

    def normalized(self) -> EvalParams:
        """A checked copy with float64 threshold arrays and sorted ``max_dets``."""
        if self.iou_type not in IOU_TYPES:
            raise RemError(
                f"unknown iou type {self.iou_type!r}; choose from {', '.join(IOU_TYPES)}"
            )
        if self.protocol not in ("coco", "lvis"):
            raise RemError(f"unknown protocol {self.protocol!r}; choose coco or lvis")
        iou_thrs = np.asarray(self.iou_thrs, dtype=np.float64).reshape(-1)
        rec_thrs = np.asarray(self.rec_thrs, dtype=np.float64).reshape(-1)
        if iou_thrs.size == 0 or rec_thrs.size == 0:
            raise RemError("iou_thrs and rec_thrs must not be empty")
        if not np.all(np.isfinite(iou_thrs)) or not np.all(np.isfinite(rec_thrs)):
            raise RemError("iou_thrs and rec_thrs must be finite")
        max_dets = sorted(int(m) for m in self.max_dets)
        if not max_dets or max_dets[0] < 0:
            raise RemError(f"max_dets must be non-negative integers, got {self.max_dets}")
        if self.protocol == "lvis" and len(max_dets) != 1:
            raise RemError(f"LVIS takes one max_dets value (per image), got {self.max_dets}")
        area_rng = [[float(lo), float(hi)] for lo, hi in self.area_rng]
        if len(self.area_rng_lbl) != len(area_rng):
            raise RemError("area_rng and area_rng_lbl must have the same length")
        if not self.dilation_ratio >= 0:
            raise RemError(f"dilation ratio must be >= 0, got {self.dilation_ratio}")
        return replace(
            self,
            iou_thrs=iou_thrs,
            rec_thrs=rec_thrs,
            max_dets=max_dets,
            area_rng=area_rng,
            area_rng_lbl=list(self.area_rng_lbl),
        )

    def to_dict(self) -> dict:
        """JSON-ready form (thresholds as float lists, exactly representable round trip)."""
        return {
            "iou_type": self.iou_type,
            "protocol": self.protocol,
            "iou_thrs": [float(v) for v in np.asarray(self.iou_thrs)],
            "rec_thrs": [float(v) for v in np.asarray(self.rec_thrs)],
            "max_dets": [int(m) for m in self.max_dets],
            "area_rng": [[float(lo), float(hi)] for lo, hi in self.area_rng],
            "area_rng_lbl": list(self.area_rng_lbl),
            "use_cats": bool(self.use_cats),
            "dilation_ratio": float(self.dilation_ratio),
        }
