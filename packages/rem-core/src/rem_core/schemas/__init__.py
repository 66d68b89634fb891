"""Pydantic schemas shared by every rem package.

Packages talk to each other through these types: a COCO or LVIS dataset, a list of detection
results, a referring-expression sample, an evaluation report.
"""

from rem_core.schemas.coco import (
    RLE,
    Annotation,
    Category,
    CocoDataset,
    Image,
    Info,
    License,
    Polygons,
    Segmentation,
)
from rem_core.schemas.eval_report import (
    COCO_STAT_NAMES,
    CategoryMetrics,
    EvalComparison,
    EvalReport,
    IouTypeMetrics,
    MetricArrays,
    ReferringReport,
)
from rem_core.schemas.peaks import ImagePeaks, Peak, PeakSet
from rem_core.schemas.proposals import ImageProposals, Proposal, ProposalSet
from rem_core.schemas.referring import ReferringSample
from rem_core.schemas.results import Detection, Results

__all__ = [
    "COCO_STAT_NAMES",
    "RLE",
    "Annotation",
    "Category",
    "CategoryMetrics",
    "CocoDataset",
    "Detection",
    "EvalComparison",
    "EvalReport",
    "Image",
    "ImagePeaks",
    "ImageProposals",
    "Info",
    "IouTypeMetrics",
    "License",
    "MetricArrays",
    "Peak",
    "PeakSet",
    "Polygons",
    "Proposal",
    "ProposalSet",
    "ReferringReport",
    "ReferringSample",
    "Results",
    "Segmentation",
]
