"""rem-eval: COCO, Boundary, LVIS and referring-segmentation metrics, exact and fast.

``evaluate(gt, results, iou_types=["segm", "boundary"])`` returns an
:class:`~rem_core.schemas.EvalReport` whose numbers equal pycocotools' (segm, bbox),
boundary-iou-api's (boundary) and lvis-api's (``lvis=True``) to the last bit.
``rem_eval.compat`` has drop-in ``COCO`` / ``COCOeval`` classes for pycocotools code.
"""

from rem_eval.api import evaluate, evaluate_many
from rem_eval.params import EvalParams
from rem_eval.referring import evaluate_referring

__all__ = ["EvalParams", "evaluate", "evaluate_many", "evaluate_referring"]
