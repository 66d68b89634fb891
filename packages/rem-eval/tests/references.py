"""Independent reference implementations the tests compare rem-eval against.

- COCO segm / bbox: pycocotools' COCOeval itself.
- Boundary AP: boundary-iou-api is not on PyPI, so it is re-derived from eval.md §2 in the most
  direct way: pycocotools' COCOeval with ``computeIoU`` overridden, bands from full-image masks
  padded by one zero pixel and eroded d times with a 3x3 square (``cv2.erode(iterations=d)``),
  band IoU with pycocotools' RLE IoU, min(mask IoU, band IoU) for non-crowd GT, and GT ignore
  = ignore OR iscrowd.
- LVIS: lvis-api (``lvis`` 0.5.3 from PyPI) when installed, with its ``np.float`` patched; the
  boundary variant overrides ``compute_iou`` the same way.

None of this shares code with rem_eval.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections import defaultdict

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def quiet():
    return contextlib.redirect_stdout(io.StringIO())


def coco_from_dict(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with quiet():
        coco.createIndex()
    return coco


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api's mask_to_boundary, as eval.md §2.1 describes it."""
    h, w = mask.shape
    dilation = round(dilation_ratio * np.sqrt(h**2 + w**2))
    dilation = max(dilation, 1)
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    kernel = np.ones((3, 3), dtype=np.uint8)
    eroded = cv2.erode(padded, kernel, iterations=dilation)[1 : h + 1, 1 : w + 1]
    return mask - eroded


def boundary_rle_of(rle: dict, dilation_ratio: float = 0.02) -> dict:
    """Band RLE of a compressed RLE mask (full-image decode, iterated erosion)."""
    band = mask_to_boundary(mask_utils.decode(rle), dilation_ratio)
    return mask_utils.encode(np.asfortranarray(band))


def boundary_rle(coco: COCO, ann: dict, dilation_ratio: float) -> dict:
    mask = coco.annToMask(ann) if hasattr(coco, "annToMask") else coco.ann_to_mask(ann)
    band = mask_to_boundary(mask, dilation_ratio)
    return mask_utils.encode(np.asfortranarray(band))


class BoundaryCOCOeval(COCOeval):
    """COCOeval with iouType "boundary" re-derived from the spec."""

    def __init__(self, gt: COCO, dt: COCO, dilation_ratio: float = 0.02, ignore_rule: str = "or"):
        super().__init__(gt, dt, "segm")
        self.dilation_ratio = dilation_ratio
        self.ignore_rule = ignore_rule
        # Bands of every annotation, GT and DT, crowd included (as the reference does).
        for coco in (gt, dt):
            for ann in coco.dataset["annotations"]:
                ann["boundary"] = boundary_rle(coco, ann, dilation_ratio)

    def _prepare(self):
        p = self.params
        gts = self.cocoGt.loadAnns(self.cocoGt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
        dts = self.cocoDt.loadAnns(self.cocoDt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
        for ann in gts:
            ann["segmentation"] = self.cocoGt.annToRLE(ann)
        for ann in dts:
            ann["segmentation"] = self.cocoDt.annToRLE(ann)
        for gt in gts:
            crowd = "iscrowd" in gt and gt["iscrowd"]
            if self.ignore_rule == "or":
                gt["ignore"] = bool(gt.get("ignore", 0)) or bool(crowd)
            else:
                gt["ignore"] = crowd
        self._gts = defaultdict(list)
        self._dts = defaultdict(list)
        for gt in gts:
            self._gts[gt["image_id"], gt["category_id"]].append(gt)
        for dt in dts:
            self._dts[dt["image_id"], dt["category_id"]].append(dt)
        self.evalImgs = defaultdict(list)
        self.eval = {}

    def computeIoU(self, imgId, catId):
        p = self.params
        gt = self._gts[imgId, catId]
        dt = self._dts[imgId, catId]
        if len(gt) == 0 and len(dt) == 0:
            return []
        inds = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in inds]
        if len(dt) > p.maxDets[-1]:
            dt = dt[0 : p.maxDets[-1]]
        iscrowd = [int(o["iscrowd"]) for o in gt]
        segm = mask_utils.iou(
            [d["segmentation"] for d in dt], [g["segmentation"] for g in gt], iscrowd
        )
        band = mask_utils.iou([d["boundary"] for d in dt], [g["boundary"] for g in gt], iscrowd)
        if len(segm) == 0:
            return np.minimum(segm, band)
        out = np.array(segm, dtype=np.float64)
        noncrowd = ~np.asarray(iscrowd, dtype=bool)
        out[:, noncrowd] = np.minimum(out[:, noncrowd], np.asarray(band)[:, noncrowd])
        return out


def run_cocoeval(gt: dict, results: list[dict], iou_type: str, setup=None, **kw) -> COCOeval:
    """pycocotools (or the boundary re-derivation) on deep copies of the inputs."""
    G = coco_from_dict(gt)
    with quiet():
        if results:
            D = G.loadRes(copy.deepcopy(results))
        else:
            D = COCO()
            D.dataset = {
                "images": list(G.dataset["images"]),
                "annotations": [],
                "categories": G.dataset["categories"],
            }
            D.createIndex()
        E = BoundaryCOCOeval(G, D, **kw) if iou_type == "boundary" else COCOeval(G, D, iou_type)
        if setup is not None:
            setup(E.params)
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def lvis_available() -> bool:
    try:
        import lvis  # noqa: F401
    except ImportError:
        return False
    return True


def run_lvis(
    gt: dict, results: list[dict], iou_type: str, dilation_ratio: float = 0.02, max_dets=300
):
    """lvis-api's LVISEval (np.float patched), with a spec re-derived boundary variant."""
    import lvis.eval as lvis_eval
    from lvis import LVIS, LVISEval, LVISResults

    if not hasattr(np, "float"):
        np.float = float  # type: ignore[attr-defined]  # lvis 0.5.3 predates NumPy 1.24

    class _Gt(LVIS):
        def __init__(self, dataset):
            import logging

            self.logger = logging.getLogger("lvis-test")
            self.dataset = copy.deepcopy(dataset)
            self._create_index()

    G = _Gt(gt)
    logging.getLogger("lvis.results").setLevel(logging.ERROR)
    D = LVISResults(G, copy.deepcopy(results), max_dets=max_dets)

    class _Eval(LVISEval):
        def compute_iou(self, img_id, cat_id):
            if iou_type != "boundary":
                return super().compute_iou(img_id, cat_id)
            gt_, dt_ = self._get_gt_dt(img_id, cat_id)
            if len(gt_) == 0 and len(dt_) == 0:
                return []
            idx = np.argsort([-d["score"] for d in dt_], kind="mergesort")
            dt_ = [dt_[i] for i in idx]
            iscrowd = [0] * len(gt_)
            segm = mask_utils.iou(
                [d["segmentation"] for d in dt_], [g["segmentation"] for g in gt_], iscrowd
            )
            band = mask_utils.iou(
                [boundary_rle(self.lvis_dt, d, dilation_ratio) for d in dt_],
                [boundary_rle(self.lvis_gt, g, dilation_ratio) for g in gt_],
                iscrowd,
            )
            return np.minimum(segm, band)

    E = _Eval(G, D, iou_type="segm" if iou_type == "boundary" else iou_type)
    logging.getLogger("lvis").setLevel(logging.ERROR)
    with quiet():
        E.run()
    assert lvis_eval is not None
    return E
