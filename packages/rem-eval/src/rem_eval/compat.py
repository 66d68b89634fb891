"""Drop-in ``COCO`` / ``COCOeval`` for code written against pycocotools.

::

    from rem_eval.compat import COCO, COCOeval     # was: from pycocotools.coco / .cocoeval

    coco_gt = COCO("instances_val2017.json")
    coco_dt = coco_gt.loadRes("results.json")
    E = COCOeval(coco_gt, coco_dt, "segm")          # also "bbox" and "boundary"
    E.params.imgIds = [...]                          # Params keep pycocotools' names
    E.evaluate(); E.accumulate(); E.summarize()
    E.stats, E.eval["precision"], E.evalImgs, E.ious

``COCOeval`` also takes pycocotools' own ``COCO`` objects. Results are bit-identical to
pycocotools. ``evalImgs`` and ``ious`` are built on first access (evaluation itself does not
need them). Unlike pycocotools, ``loadRes`` leaves the caller's result dicts untouched.
"""

from __future__ import annotations

import copy
import datetime
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_core.masks import dilation_width
from rem_core.schemas.eval_report import COCO_STAT_NAMES
from rem_eval.api import EvalOptions, evaluate_tables
from rem_eval.bands import (
    band_of_crop,
    crop_intersection,
    crop_of_runs,
    iou_of_counts,
    rle_runs,
)
from rem_eval.engine import KindResult
from rem_eval.geometry import box_iou, to_coco_rle
from rem_eval.parallel import default_workers, gc_paused
from rem_eval.params import (
    DEFAULT_AREA_LBL,
    DEFAULT_AREA_RNG,
    EvalParams,
    default_iou_thrs,
    default_rec_thrs,
)
from rem_eval.summary import coco_reference_stats, stats_lines
from rem_eval.tables import load_ground_truth


class COCO:
    """A minimal pycocotools ``COCO``: the dataset dict and the usual indexes and getters."""

    def __init__(self, annotation_file: str | Path | dict | None = None):
        self.dataset: dict = {}
        self._results: list[dict] | None = None
        if isinstance(annotation_file, dict):
            self.dataset = annotation_file
        elif annotation_file is not None:
            from rem_core.io import read_json

            self.dataset = read_json(annotation_file)
            self.path = Path(annotation_file)
        self.createIndex()

    def createIndex(self) -> None:
        self.anns: dict[int, dict] = {}
        self.imgs: dict[int, dict] = {}
        self.cats: dict[int, dict] = {}
        self.imgToAnns: defaultdict[int, list[dict]] = defaultdict(list)
        self.catToImgs: defaultdict[int, list[int]] = defaultdict(list)
        for ann in self.dataset.get("annotations", []) or []:
            self.imgToAnns[ann["image_id"]].append(ann)
            self.anns[ann["id"]] = ann
        for img in self.dataset.get("images", []) or []:
            self.imgs[img["id"]] = img
        for cat in self.dataset.get("categories", []) or []:
            self.cats[cat["id"]] = cat
        for ann in self.dataset.get("annotations", []) or []:
            self.catToImgs[ann["category_id"]].append(ann["image_id"])

    def getImgIds(self, imgIds=(), catIds=()) -> list[int]:
        ids = set(imgIds) if imgIds else set(self.imgs)
        for i, c in enumerate(catIds):
            ids = ids & set(self.catToImgs[c]) if (i or imgIds) else set(self.catToImgs[c])
        return list(ids)

    def getCatIds(self, catNms=(), supNms=(), catIds=()) -> list[int]:
        cats = list(self.cats.values())
        if catNms:
            cats = [c for c in cats if c.get("name") in catNms]
        if supNms:
            cats = [c for c in cats if c.get("supercategory") in supNms]
        if catIds:
            cats = [c for c in cats if c["id"] in catIds]
        return [c["id"] for c in cats]

    def getAnnIds(self, imgIds=(), catIds=(), areaRng=(), iscrowd=None) -> list[int]:
        anns = (
            [a for i in imgIds for a in self.imgToAnns[i]]
            if imgIds
            else self.dataset.get("annotations", [])
        )
        if catIds:
            anns = [a for a in anns if a["category_id"] in catIds]
        if areaRng:
            anns = [a for a in anns if areaRng[0] < a["area"] < areaRng[1]]
        if iscrowd is not None:
            return [a["id"] for a in anns if a.get("iscrowd", 0) == iscrowd]
        return [a["id"] for a in anns]

    def loadAnns(self, ids=()) -> list[dict]:
        return [self.anns[i] for i in (ids if isinstance(ids, list | tuple) else [ids])]

    def loadImgs(self, ids=()) -> list[dict]:
        return [self.imgs[i] for i in (ids if isinstance(ids, list | tuple) else [ids])]

    def loadCats(self, ids=()) -> list[dict]:
        return [self.cats[i] for i in (ids if isinstance(ids, list | tuple) else [ids])]

    def loadRes(self, resFile: str | Path | list[dict]) -> COCO:
        """Results as a COCO object (annotations get ``id``, ``area``, ``iscrowd``, ``bbox``
        as pycocotools adds them; the input dicts are copied, not modified)."""
        from rem_eval.tables import read_results

        raw, _, _ = read_results(resFile)
        if not raw:
            raise RemError("the results list is empty (pycocotools would crash here too)")
        res = COCO()
        res.dataset = {
            "info": copy.deepcopy(self.dataset.get("info", {})),
            "images": list(self.dataset.get("images", [])),
            "categories": copy.deepcopy(self.dataset.get("categories", [])),
        }
        known = set(self.imgs)
        bad = next((d for d in raw if d.get("image_id") not in known), None)
        if bad is not None:
            raise RemError(
                f"results name image {bad.get('image_id')!r}, which is not in the ground truth"
            )
        anns = [dict(d) for d in raw]
        first = anns[0]
        if "bbox" in first and first["bbox"] != []:
            for i, ann in enumerate(anns):
                x, y, w, h = ann["bbox"]
                if "segmentation" not in ann:
                    ann["segmentation"] = [[x, y, x, y + h, x + w, y + h, x + w, y]]
                ann["area"] = w * h
                ann["id"] = i + 1
                ann["iscrowd"] = 0
        elif "segmentation" in first:
            for i, ann in enumerate(anns):
                img = self.imgs[ann["image_id"]]
                rle, _ = to_coco_rle(ann["segmentation"], img["height"], img["width"])
                ann["area"] = float(mask_utils.area(rle))
                if "bbox" not in ann:
                    ann["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
                ann["id"] = i + 1
                ann["iscrowd"] = 0
        else:
            raise RemError("results need 'bbox' or 'segmentation'")
        res.dataset["annotations"] = anns
        res._results = raw
        res.createIndex()
        return res


class Params:
    """pycocotools' ``Params`` (same attribute names), plus ``dilation_ratio`` for boundary."""

    def __init__(self, iouType: str = "segm"):
        if iouType not in ("segm", "bbox", "boundary"):
            raise RemError(f"iouType {iouType!r} is not supported (segm, bbox, boundary)")
        self.imgIds: list[int] = []
        self.catIds: list[int] = []
        self.iouThrs = default_iou_thrs()
        self.recThrs = default_rec_thrs()
        self.maxDets = [1, 10, 100]
        self.areaRng = [list(r) for r in DEFAULT_AREA_RNG]
        self.areaRngLbl = list(DEFAULT_AREA_LBL)
        self.useCats = 1
        self.iouType = iouType
        self.useSegm = None
        self.dilation_ratio = 0.02

    def to_eval_params(self) -> EvalParams:
        return EvalParams(
            iou_type=self.iouType,  # type: ignore[arg-type]
            iou_thrs=np.asarray(self.iouThrs, dtype=np.float64),
            rec_thrs=np.asarray(self.recThrs, dtype=np.float64),
            max_dets=list(self.maxDets),
            area_rng=[list(r) for r in self.areaRng],
            area_rng_lbl=list(self.areaRngLbl),
            use_cats=bool(self.useCats),
            img_ids=list(self.imgIds),
            cat_ids=list(self.catIds),
            dilation_ratio=self.dilation_ratio,
        ).normalized()


def _results_of(coco_dt: Any) -> tuple[list[dict], bool]:
    """(records, already loaded?) behind a results object: our COCO keeps the raw results
    list; pycocotools' ``loadRes`` output holds processed records (ids, areas, boxes)."""
    if coco_dt is None:
        return [], False
    raw = getattr(coco_dt, "_results", None)
    if raw is not None:
        return raw, False
    return list(coco_dt.dataset.get("annotations", [])), True


class COCOeval:
    """pycocotools-compatible evaluator (``segm``, ``bbox`` and ``boundary``)."""

    def __init__(self, cocoGt: Any = None, cocoDt: Any = None, iouType: str = "segm"):
        self.cocoGt = cocoGt
        self.cocoDt = cocoDt
        self.params = Params(iouType=iouType)
        self.eval: dict = {}
        self.stats: np.ndarray = np.zeros(0)
        self._paramsEval: Params | None = None
        self._result: KindResult | None = None
        self._gt_table = None
        self._evalImgs: list | None = None
        self._ious: dict | None = None
        if cocoGt is not None:
            self.params.imgIds = sorted(cocoGt.getImgIds())
            self.params.catIds = sorted(cocoGt.getCatIds())

    def evaluate(self) -> None:
        """Match detections to GT (all images, categories, area ranges at once)."""
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
        p.imgIds = list(np.unique(p.imgIds))
        if p.useCats:
            p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        ep = p.to_eval_params()
        with gc_paused():
            gt = load_ground_truth(self.cocoGt)
            raw, loaded = _results_of(self.cocoDt)
            opts = EvalOptions(
                params=ep,
                strict_categories=False,
                workers=default_workers(),
                per_category=False,
            )
            _, kinds = evaluate_tables(gt, raw, [p.iouType], opts, loaded=loaded)
        self._result = kinds[p.iouType]
        self._gt_table = gt
        self._paramsEval = copy.deepcopy(p)
        self._evalImgs = None
        self._ious = None

    def accumulate(self, p: Params | None = None) -> None:
        """Fill ``self.eval`` (precision T x R x K x A x M, recall, scores) as pycocotools does."""
        if self._result is None:
            raise RemError("run evaluate() first")
        if p is not None and p is not self.params:
            saved, self.params = self.params, p
            try:
                self.evaluate()
            finally:
                self.params = saved
        acc = self._result.acc
        self.eval = {
            "params": self.params,
            "counts": list(acc.precision.shape),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "precision": acc.precision,
            "recall": acc.recall,
            "scores": acc.scores,
        }

    def summarize(self) -> None:
        """Print the 12 standard lines and set ``self.stats`` (the reference's values)."""
        if not self.eval:
            raise RemError("run accumulate() first")
        ep = self._result.params  # type: ignore[union-attr]
        stats = coco_reference_stats(self.eval["precision"], self.eval["recall"], ep)
        self.stats = np.asarray(stats, dtype=np.float64)
        named = dict(zip(COCO_STAT_NAMES, stats))
        for line in stats_lines(named):  # type: ignore[arg-type]
            print(line)

    def run(self) -> np.ndarray:
        self.evaluate()
        self.accumulate()
        self.summarize()
        return self.stats

    # ---------------------------------------------------------------- lazily built extras

    @property
    def evalImgs(self) -> list[dict | None]:
        """pycocotools' per (category, area, image) records, built on first access."""
        if self._evalImgs is None:
            self._evalImgs = _build_eval_imgs(self._result, self._gt_table)  # type: ignore[arg-type]
        return self._evalImgs

    @property
    def ious(self) -> dict[tuple[int, int], Any]:
        """Full IoU matrices per (image, category), built on first access."""
        if self._ious is None:
            self._ious = _build_ious(self._result, self._gt_table)  # type: ignore[arg-type]
        return self._ious


def _group_records(kr: KindResult):
    """Per group: det positions (score order) and GT positions (file order)."""
    gr = kr.groups
    for g in range(gr.num_groups):
        yield (
            g,
            np.arange(gr.det_start[g], gr.det_start[g + 1]),
            np.arange(gr.gt_start[g], gr.gt_start[g + 1]),
        )


def _build_eval_imgs(kr: KindResult, gt) -> list[dict | None]:
    gr = kr.groups
    p = kr.params
    T, A = p.iou_thrs.size, len(p.area_rng)
    n_img, K = gr.eval_img_ids.size, gr.num_k
    out: list[dict | None] = [None] * (K * A * n_img)
    match_of = {int(d): i for i, d in enumerate(kr.matches.cand_det.tolist())}
    det_ids = kr.dets.ids[gr.d_idx]
    gt_ids = gt.ann_ids[gr.g_idx]
    rng = np.asarray(p.area_rng)
    cat_ids = gr.eval_cat_ids
    for g, dpos, gpos in _group_records(kr):
        img, k = int(gr.group_img[g]), int(gr.group_k[g])
        for a in range(A):
            ig = kr.gt_ignore[gpos, a]
            gorder = np.argsort(ig, kind="mergesort")
            gsorted = gpos[gorder]
            D, G = dpos.size, gpos.size
            dtm = np.zeros((T, D))
            gtm = np.zeros((T, G))
            dt_ig = np.zeros((T, D), dtype=bool)
            col_of = {int(q): j for j, q in enumerate(gsorted.tolist())}
            for di, d in enumerate(dpos.tolist()):
                c = match_of.get(d)
                if c is None:
                    continue
                for t in range(T):
                    m = int(kr.matches.gt_of[c, a, t])
                    if m >= 0:
                        dtm[t, di] = gt_ids[m]
                        gtm[t, col_of[m]] = det_ids[d]
                        dt_ig[t, di] = kr.gt_ignore[m, a]
            area = kr.det_area[dpos]
            out_of = (area < rng[a, 0]) | (area > rng[a, 1])
            dt_ig = dt_ig | ((dtm == 0) & out_of[None, :])
            out[k * A * n_img + a * n_img + img] = {
                "image_id": int(gr.eval_img_ids[img]),
                "category_id": int(cat_ids[k]),
                "aRng": list(p.area_rng[a]),
                "maxDet": int(p.max_dets[-1]),
                "dtIds": det_ids[dpos].tolist(),
                "gtIds": gt_ids[gsorted].tolist(),
                "dtMatches": dtm,
                "gtMatches": gtm,
                "dtScores": gr.d_score[dpos].tolist(),
                "gtIgnore": ig[gorder].astype(int),
                "dtIgnore": dt_ig,
            }
    return out


def _build_ious(kr: KindResult, gt) -> dict[tuple[int, int], Any]:
    gr = kr.groups
    p = kr.params
    dets = kr.dets
    out: dict[tuple[int, int], Any] = {}
    for img_id in gr.eval_img_ids.tolist():
        for k in range(gr.num_k):
            out[int(img_id), int(gr.eval_cat_ids[k])] = []
    for g, dpos, gpos in _group_records(kr):
        img = int(gr.group_img[g])
        key = (int(gr.eval_img_ids[img]), int(gr.eval_cat_ids[gr.group_k[g]]))
        if dpos.size == 0 or gpos.size == 0:
            continue
        gi = gt.image_index(np.array([key[0]]))[0]
        h, w = int(gt.heights[gi]), int(gt.widths[gi])
        crowd = gt.iscrowd[gr.g_idx[gpos]]
        di = gr.d_idx[dpos]
        if p.iou_type == "bbox":
            dbox = dets.bbox[di]
            gbox = gt.bbox[gr.g_idx[gpos]]
            dd, gg = np.meshgrid(np.arange(dpos.size), np.arange(gpos.size), indexing="ij")
            v = box_iou(dbox[dd.ravel()], gbox[gg.ravel()], crowd[gg.ravel()])
            out[key] = v.reshape(dpos.size, gpos.size)
            continue
        drle = [to_coco_rle(dets.segm[int(i)], h, w)[0] for i in di]  # type: ignore[index]
        grle = [to_coco_rle(gt.segm[int(j)], h, w)[0] for j in gr.g_idx[gpos]]
        m = np.asarray(
            mask_utils.iou(drle, grle, crowd.astype(np.uint8).tolist()), dtype=np.float64
        )
        if p.iou_type == "boundary":
            d_ = dilation_width(h, w, p.dilation_ratio)
            db = [band_of_crop(crop_of_runs(rle_runs(r), h), d_) for r in drle]
            gb = [band_of_crop(crop_of_runs(rle_runs(r), h), d_) for r in grle]
            for a in range(len(db)):
                for b in range(len(gb)):
                    if not crowd[b]:
                        biou = iou_of_counts(
                            crop_intersection(db[a], gb[b]), db[a].count, gb[b].count
                        )
                        m[a, b] = min(m[a, b], biou)
        out[key] = m
    return out


__all__ = ["COCO", "COCOeval", "Params"]
