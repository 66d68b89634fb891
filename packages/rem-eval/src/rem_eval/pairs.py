"""IoUs of the (detection, ground truth) pairs that can match, computed in parallel.

Only pairs inside one group (same image, same category unless pooled) are ever compared. And
only pairs whose IoU reaches the lowest threshold can ever match: COCOeval starts each search at
min(t, 1 - 1e-10) and takes a GT only when IoU >= that, so a pair below every threshold cannot
change any result. Those are the "candidates" kept here, with their exact IoU; everything else
is dropped after its IoU is known to be too low.

- mask IoU: pycocotools' ``rleIou`` (C) on each group, on the RLEs ``annToRLE`` would make;
- box IoU: the reference formula, vectorised over all pairs of a chunk (:func:`box_iou`);
- boundary IoU (eval.md §2.2): min(mask IoU, band IoU) for non-crowd GT, the crowd mask IoU
  otherwise. Since the min never exceeds the mask IoU, bands are needed only for pairs whose
  mask IoU is a candidate, which avoids computing a band for most detections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_eval.bands import (
    band_of_crop,
    crop_intersection,
    crop_of_runs,
    dilation_width,
    iou_of_counts,
    rle_runs,
)
from rem_eval.geometry import box_iou, rle_areas, to_coco_rle
from rem_eval.grouping import Groups
from rem_eval.parallel import run_tasks
from rem_eval.tables import Detections, GroundTruth


@dataclass
class PairSet:
    """Candidate pairs: positions in the Groups' detection / GT arrays and their IoU."""

    det: np.ndarray
    gt: np.ndarray
    iou: np.ndarray

    @staticmethod
    def concat(parts: list[PairSet]) -> PairSet:
        if not parts:
            return PairSet(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        return PairSet(
            np.concatenate([p.det for p in parts]),
            np.concatenate([p.gt for p in parts]),
            np.concatenate([p.iou for p in parts]),
        )


@dataclass
class PairJob:
    """Everything a worker reads (inherited through fork, never pickled)."""

    gt: GroundTruth
    dets: Detections
    groups: Groups
    kinds: tuple[str, ...]
    tmin: float
    want_area: bool
    dilation_ratio: float
    img_hw: np.ndarray  # (num evaluated images, 2): height, width
    gt_box: np.ndarray | None = None  # (num group GTs, 4) XYWH, bbox kind only
    det_box: np.ndarray | None = None  # (num group dets, 4)
    gt_crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass
class ChunkOut:
    pairs: dict[str, PairSet]
    det_area: np.ndarray | None
    repaired: list[int]


def _group_pairs(job: PairJob, g0: int, g1: int) -> tuple[np.ndarray, np.ndarray]:
    """All (det position, gt position) pairs of groups g0..g1-1, group by group, det-major."""
    gr = job.groups
    nd = np.diff(gr.det_start[g0 : g1 + 1])
    ng = np.diff(gr.gt_start[g0 : g1 + 1])
    counts = nd * ng
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    off = np.arange(total) - first
    ngr = np.repeat(ng, counts)
    det = np.repeat(gr.det_start[g0:g1], counts) + off // ngr
    gt = np.repeat(gr.gt_start[g0:g1], counts) + off % ngr
    return det, gt


class _Rles:
    """Per-chunk RLE access for detections and GTs, converting (and caching) when needed."""

    def __init__(self, job: PairJob):
        self.job = job
        self.det_cache: dict[int, dict] = {}
        self.gt_cache: dict[int, dict] = {}
        self.repaired: list[int] = []

    def det(self, pos: int) -> dict:
        job = self.job
        i = int(job.groups.d_idx[pos])
        segm = job.dets.segm[i]  # type: ignore[index]
        if isinstance(segm, dict) and isinstance(segm.get("counts"), str | bytes):
            return segm
        cached = self.det_cache.get(pos)
        if cached is None:
            h, w = job.img_hw[job.groups.d_imgpos[pos]]
            try:
                cached, _ = to_coco_rle(segm, int(h), int(w))
            except RemError as exc:
                raise RemError(exc.detail, path=job.dets.source, where=f"[{job.dets.where[i]}].segmentation") from None
            self.det_cache[pos] = cached
        return cached

    def gt(self, pos: int) -> dict:
        cached = self.gt_cache.get(pos)
        if cached is None:
            job = self.job
            j = int(job.groups.g_idx[pos])
            h, w = job.img_hw[job.groups.g_imgpos[pos]]
            try:
                cached, repaired = to_coco_rle(job.gt.segm[j], int(h), int(w))
            except RemError as exc:
                raise RemError(
                    exc.detail, path=job.gt.path, where=f"annotations[{job.gt.ann_where[j]}].segmentation"
                ) from None
            if repaired:
                self.repaired.append(int(job.gt.ann_where[j]))
            self.gt_cache[pos] = cached
        return cached


def _band(rle: dict, height: int, d: int):
    return band_of_crop(crop_of_runs(rle_runs(rle), height), d)


def _chunk(job: PairJob, g0: int, g1: int) -> ChunkOut:
    gr = job.groups
    rles = _Rles(job)
    out: dict[str, list[PairSet]] = {k: [] for k in job.kinds}
    det_area = None
    if job.want_area:
        d0, d1 = int(gr.det_start[g0]), int(gr.det_start[g1])
        segs = [rles.det(p) for p in range(d0, d1)]
        det_area = (
            rle_areas(segs)
        )
    mask_kinds = "segm" in job.kinds or "boundary" in job.kinds
    if mask_kinds:
        nd = np.diff(gr.det_start[g0 : g1 + 1])
        ng = np.diff(gr.gt_start[g0 : g1 + 1])
        for g in (np.flatnonzero((nd > 0) & (ng > 0)) + g0).tolist():
            ds, de = int(gr.det_start[g]), int(gr.det_start[g + 1])
            gs, ge = int(gr.gt_start[g]), int(gr.gt_start[g + 1])
            crowd = job.gt_crowd[gs:ge]
            m = np.asarray(
                mask_utils.iou(
                    [rles.det(p) for p in range(ds, de)],
                    [rles.gt(p) for p in range(gs, ge)],
                    crowd.astype(np.uint8).tolist(),
                ),
                dtype=np.float64,
            ).reshape(de - ds, ge - gs)
            di, gi = np.nonzero(m >= job.tmin)
            if "segm" in job.kinds and di.size:
                out["segm"].append(PairSet(di + ds, gi + gs, m[di, gi]))
            if "boundary" in job.kinds and di.size:
                vals = m[di, gi].copy()
                todo = np.flatnonzero(~crowd[gi])
                if todo.size:
                    h, w = (int(v) for v in job.img_hw[gr.group_img[g]])
                    d = dilation_width(h, w, job.dilation_ratio)
                    dband: dict[int, object] = {}
                    gband: dict[int, object] = {}
                    for t in todo.tolist():
                        a, b = int(di[t]), int(gi[t])
                        if a not in dband:
                            bd = _band(rles.det(ds + a), h, d)
                            dband[a] = (bd, bd.count)
                        if b not in gband:
                            bg = _band(rles.gt(gs + b), h, d)
                            gband[b] = (bg, bg.count)
                        (bd, nd_), (bg, ng_) = dband[a], gband[b]
                        biou = iou_of_counts(crop_intersection(bd, bg), nd_, ng_)
                        vals[t] = min(vals[t], biou)
                keep = vals >= job.tmin
                if keep.any():
                    out["boundary"].append(PairSet(di[keep] + ds, gi[keep] + gs, vals[keep]))
    if "bbox" in job.kinds:
        det, gt = _group_pairs(job, g0, g1)
        if det.size:
            v = box_iou(job.det_box[det], job.gt_box[gt], job.gt_crowd[gt])  # type: ignore[index]
            keep = v >= job.tmin
            out["bbox"].append(PairSet(det[keep], gt[keep], v[keep]))
    return ChunkOut({k: PairSet.concat(v) for k, v in out.items()}, det_area, rles.repaired)


def _split(groups: Groups, n_chunks: int, weight_pairs: float) -> list[tuple[int, int]]:
    """Contiguous group ranges of about equal cost (detections + weighted pair count)."""
    G = groups.num_groups
    if G == 0:
        return []
    nd = np.diff(groups.det_start)
    ng = np.diff(groups.gt_start)
    cost = np.cumsum(nd + ng + weight_pairs * nd * ng + 1.0)
    bounds = np.searchsorted(cost, np.linspace(0, cost[-1], n_chunks + 1)[1:-1], side="left")
    edges = np.unique(np.r_[0, bounds, G])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def compute_pairs(job: PairJob, workers: int) -> ChunkOut:
    """Candidate pairs for every kind in ``job.kinds`` (and detection mask areas if wanted)."""
    gr = job.groups
    small = gr.d_idx.size < 20_000
    n_chunks = 1 if small or workers <= 1 else workers * 6
    chunks = _split(gr, n_chunks, 0.5 if "boundary" in job.kinds else 0.1)
    results = run_tasks(_chunk, job, chunks, 1 if small else workers)
    pairs = {k: PairSet.concat([r.pairs[k] for r in results]) for k in job.kinds}
    det_area = None
    if job.want_area:
        det_area = (
            np.concatenate([r.det_area for r in results]) if results else np.zeros(0)
        )
    repaired = sorted({w for r in results for w in r.repaired})
    return ChunkOut(pairs, det_area, repaired)
