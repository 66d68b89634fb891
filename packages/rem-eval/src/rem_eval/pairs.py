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

import itertools
from dataclasses import dataclass, field

import numpy as np
from pycocotools import _mask as _coco_mask
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_core.masks import dilation_width
from rem_eval.bands import (
    band_of_crop,
    crop_intersection,
    crop_of_runs,
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
    dets_compressed: bool = False  # every detection mask is compressed RLE already


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
    """Per-chunk RLEs of detections and GTs, converted (and cached) only where needed.

    Detections in compressed RLE (the usual results format) are used as they are. GT polygons
    are rasterised image by image in one ``frPoly`` call, the same routine ``frPyObjects``
    uses, then merged per annotation as ``annToRLE`` does.
    """

    def __init__(self, job: PairJob, d0: int, d1: int):
        self.job = job
        self.d0 = d0
        segm = job.dets.segm
        assert segm is not None
        self.dets = [segm[i] for i in job.groups.d_idx[d0:d1].tolist()]
        self.gts: dict[int, dict] = {}
        self.repaired: list[int] = []
        if not job.dets_compressed:
            for j, sg in enumerate(self.dets):
                if not (isinstance(sg, dict) and isinstance(sg.get("counts"), str | bytes)):
                    self.dets[j] = self._convert_det(d0 + j, sg)

    def _convert_det(self, pos: int, segm) -> dict:
        job = self.job
        i = int(job.groups.d_idx[pos])
        h, w = job.img_hw[job.groups.d_imgpos[pos]]
        try:
            return to_coco_rle(segm, int(h), int(w))[0]
        except RemError as exc:
            raise RemError(
                exc.detail, path=job.dets.source, where=f"[{job.dets.where[i]}].segmentation"
            ) from None

    def det_slice(self, ds: int, de: int) -> list[dict]:
        return self.dets[ds - self.d0 : de - self.d0]

    def det(self, pos: int) -> dict:
        return self.dets[pos - self.d0]

    def load_gts(self, positions: np.ndarray) -> None:
        """Convert the GTs at ``positions`` (Groups order), batching polygons per image."""
        job = self.job
        gr = job.groups
        segm = job.gt.segm
        by_image: dict[int, list[int]] = {}
        for pos in positions.tolist():
            by_image.setdefault(int(gr.g_imgpos[pos]), []).append(pos)
        for imgpos, plist in by_image.items():
            h, w = (int(v) for v in job.img_hw[imgpos])
            polys: list = []
            spans: list[tuple[int, int, int]] = []
            for pos in plist:
                sg = segm[int(gr.g_idx[pos])]
                if (
                    isinstance(sg, list)
                    and sg
                    and all(isinstance(p, list) and len(p) > 4 for p in sg)
                ):
                    spans.append((pos, len(polys), len(sg)))
                    polys.extend(sg)
                else:
                    self.gts[pos] = self._convert_gt(pos, sg, h, w)
            if not polys:
                continue
            try:
                rles = _coco_mask.frPoly(polys, h, w)
            except Exception:
                for pos, _, _ in spans:
                    self.gts[pos] = self._convert_gt(pos, segm[int(gr.g_idx[pos])], h, w)
                continue
            for pos, first, count in spans:
                self.gts[pos] = (
                    rles[first] if count == 1 else _coco_mask.merge(rles[first : first + count], 0)
                )

    def _convert_gt(self, pos: int, sg, h: int, w: int) -> dict:
        job = self.job
        j = int(job.groups.g_idx[pos])
        try:
            rle, repaired = to_coco_rle(sg, h, w)
        except RemError as exc:
            raise RemError(
                exc.detail,
                path=job.gt.path,
                where=f"annotations[{job.gt.ann_where[j]}].segmentation",
            ) from None
        if repaired:
            self.repaired.append(int(job.gt.ann_where[j]))
        return rle

    def gt_slice_of(self, positions: np.ndarray) -> list[dict]:
        return [self.gts[p] for p in positions.tolist()]

    def gt_slice(self, gs: int, ge: int) -> list[dict]:
        return [self.gts[p] for p in range(gs, ge)]

    def gt(self, pos: int) -> dict:
        return self.gts[pos]


def _band(rle: dict, height: int, d: int):
    return band_of_crop(crop_of_runs(rle_runs(rle), height), d)


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], stops[i])``."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - first)


def _boundary_values(
    job: PairJob, rles: _Rles, g: int, det: np.ndarray, gt: np.ndarray, vals: np.ndarray
) -> np.ndarray:
    """min(mask IoU, band IoU) for the non-crowd pairs of group ``g`` (positions given)."""
    gr = job.groups
    out = vals.copy()
    todo = np.flatnonzero(~job.gt_crowd[gt])
    if not todo.size:
        return out
    h, w = (int(v) for v in job.img_hw[gr.group_img[g]])
    d = dilation_width(h, w, job.dilation_ratio)
    bands: dict[tuple[int, int], tuple] = {}
    for t in todo.tolist():
        a, b = int(det[t]), int(gt[t])
        if (0, a) not in bands:
            bd = _band(rles.det(a), h, d)
            bands[0, a] = (bd, bd.count)
        if (1, b) not in bands:
            bg = _band(rles.gt(b), h, d)
            bands[1, b] = (bg, bg.count)
        (bd, n_d), (bg, n_g) = bands[0, a], bands[1, b]
        out[t] = min(out[t], iou_of_counts(crop_intersection(bd, bg), n_d, n_g))
    return out


def _reachable(
    job: PairJob, g0: int, g1: int, d0: int, det_area: np.ndarray, gt_pos: np.ndarray, rles: _Rles
) -> np.ndarray:
    """Which detections of the chunk could reach the lowest threshold with some GT of their
    group, judging by areas alone: I <= min(|D|, |G|) and U >= max(|D|, |G|), so the IoU is at
    most min / max (crowd GT: min / |D|). Rounding is monotone, so the float IoU pycocotools
    would compute is at most the float bound; pruned pairs could never match."""
    live = np.zeros(det_area.size, dtype=bool)
    det, gt = _group_pairs(job, g0, g1)
    if not det.size:
        return live
    g_area = np.zeros(int(job.groups.gt_start[g1]) + 1)
    g_area[gt_pos] = rle_areas(rles.gt_slice_of(gt_pos))
    a_d = det_area[det - d0]
    a_g = g_area[gt]
    low = np.minimum(a_d, a_g)
    high = np.where(job.gt_crowd[gt], a_d, np.maximum(a_d, a_g))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(high > 0, low / np.where(high > 0, high, 1.0), 0.0)
    live[det[bound >= job.tmin] - d0] = True
    return live


def _chunk(job: PairJob, g0: int, g1: int) -> ChunkOut:
    gr = job.groups
    d0, d1 = int(gr.det_start[g0]), int(gr.det_start[g1])
    mask_kinds = "segm" in job.kinds or "boundary" in job.kinds
    out: dict[str, list[PairSet]] = {k: [] for k in job.kinds}
    nd = np.diff(gr.det_start[g0 : g1 + 1])
    ng = np.diff(gr.gt_start[g0 : g1 + 1])
    iou_groups = np.flatnonzero((nd > 0) & (ng > 0)) + g0
    rles = _Rles(job, d0, d1) if (mask_kinds or job.want_area) else None
    det_area = rle_areas(rles.dets) if job.want_area and rles is not None else None
    if mask_kinds and rles is not None and iou_groups.size:
        g_lo, g_hi = gr.gt_start[iou_groups], gr.gt_start[iou_groups + 1]
        gt_needed = _ranges(g_lo, g_hi)
        rles.load_gts(gt_needed)
        live = None
        if det_area is not None and job.tmin > 0:
            live = _reachable(job, g0, g1, d0, det_area, gt_needed, rles)
        # One pycocotools call per image (its per-call overhead dominates small groups); pairs
        # across categories are computed too and thrown away, most cut by its box test.
        img = gr.group_img[iou_groups]
        cuts = np.flatnonzero(np.r_[True, img[1:] != img[:-1], True])
        for c0, c1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            gl = iou_groups[c0:c1]
            dpos = _ranges(gr.det_start[gl], gr.det_start[gl + 1])
            if live is not None:
                dpos = dpos[live[dpos - d0]]
                if not dpos.size:
                    continue
            gpos = _ranges(gr.gt_start[gl], gr.gt_start[gl + 1])
            crowd = job.gt_crowd[gpos]
            m = np.asarray(
                mask_utils.iou(
                    [rles.det(p) for p in dpos.tolist()],
                    [rles.gt(p) for p in gpos.tolist()],
                    crowd.astype(np.uint8).tolist(),
                ),
                dtype=np.float64,
            ).reshape(dpos.size, gpos.size)
            if gl.size > 1:
                d_group = np.searchsorted(gr.det_start, dpos, side="right") - 1
                g_group = np.repeat(gl, gr.gt_start[gl + 1] - gr.gt_start[gl])
                same = d_group[:, None] == g_group[None, :]
                di, gi = np.nonzero(same & (m >= job.tmin))
            else:
                di, gi = np.nonzero(m >= job.tmin)
            if not di.size:
                continue
            det, gt, vals = dpos[di], gpos[gi], m[di, gi]
            if "segm" in job.kinds:
                out["segm"].append(PairSet(det, gt, vals))
            if "boundary" in job.kinds:
                bvals = np.empty_like(vals)
                owner = np.searchsorted(gr.det_start, det, side="right") - 1
                for g in np.unique(owner).tolist():
                    sel = np.flatnonzero(owner == g)
                    bvals[sel] = _boundary_values(job, rles, g, det[sel], gt[sel], vals[sel])
                keep = bvals >= job.tmin
                if keep.any():
                    out["boundary"].append(PairSet(det[keep], gt[keep], bvals[keep]))
    if "bbox" in job.kinds:
        det, gt = _group_pairs(job, g0, g1)
        if det.size:
            det_box = job.det_box[d0:d1]  # type: ignore[index]
            used = np.unique(det - d0)
            missing = used[np.isnan(det_box[used, 0])]
            if missing.size and rles is not None:
                # Mask results without a box: the box is the mask's, as loadRes sets it.
                det_box = det_box.copy()
                det_box[missing] = np.asarray(
                    mask_utils.toBbox([rles.dets[i] for i in missing.tolist()]), dtype=np.float64
                ).reshape(-1, 4)
            v = box_iou(det_box[det - d0], job.gt_box[gt], job.gt_crowd[gt])  # type: ignore[index]
            keep = v >= job.tmin
            out["bbox"].append(PairSet(det[keep], gt[keep], v[keep]))
    repaired = rles.repaired if rles is not None else []
    return ChunkOut({k: PairSet.concat(v) for k, v in out.items()}, det_area, repaired)


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
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


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
        det_area = np.concatenate([r.det_area for r in results]) if results else np.zeros(0)
    repaired = sorted({w for r in results for w in r.repaired})
    return ChunkOut(pairs, det_area, repaired)
