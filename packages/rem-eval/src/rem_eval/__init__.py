"""rem-eval: COCO, Boundary, LVIS and referring-segmentation metrics, exact and fast.

``evaluate(gt, results, iou_types=["segm", "boundary"])`` returns an
:class:`~rem_core.schemas.EvalReport` whose numbers equal pycocotools' (segm, bbox),
boundary-iou-api's (boundary) and lvis-api's (``lvis=True``) to the last bit.
``evaluate_voc(gt, results)`` gives PASCAL VOC devkit mask AP at IoU 0.25/0.5/0.7/0.75.
``rem_eval.compat`` has drop-in ``COCO`` / ``COCOeval`` classes for pycocotools code.
"""

from rem_eval.api import evaluate, evaluate_many
from rem_eval.params import EvalParams
from rem_eval.referring import evaluate_referring
from rem_eval.voc import VOC_IOU_THRS, evaluate_voc, evaluate_voc_many, voc_ap

__all__ = [
    "VOC_IOU_THRS",
    "EvalParams",
    "evaluate",
    "evaluate_many",
    "evaluate_referring",
    "evaluate_voc",
    "evaluate_voc_many",
    "voc_ap",
]
