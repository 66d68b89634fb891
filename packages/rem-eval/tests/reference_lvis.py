"""LVIS federated evaluation re-derived from eval.md §3, record by record, for the tests.

A deliberately plain implementation (per image and category, Python loops, pycocotools' IoU),
written from the specification rather than from rem_eval or lvis-api, so that the tests still
have an independent truth where lvis-api cannot be installed. Where lvis-api is installed the
tests check this file against it as well.

Rules: results are capped to the top ``max_dets`` scores per image (stable), area = w*h in
the box branch (decided by the first result) or the mask area; records with area <= 0 are not
loaded; a detection is kept if its category has GT on the image or is on the image's negative
list (images without that list keep everything); GT ``ignore`` comes from the file (default 0);
no crowd; greedy matching as COCO's without the crowd exception; unmatched detections are
ignored outside the area range or when their category is not exhaustively annotated; no maxDets
axis; summary keys as lvis-api's.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from pycocotools import mask as mask_utils
from references import boundary_rle_of


def _to_rle(segm, h, w):
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, h, w)
    return segm


def lvis_reference(
    gt: dict, results: list[dict], iou_type: str, max_dets: int = 300, dilation_ratio: float = 0.02
) -> dict:
    imgs = {im["id"]: im for im in gt["images"]}
    cat_ids = sorted(c["id"] for c in gt["categories"])
    cats = {c["id"]: c for c in gt["categories"]}
    img_ids = sorted(imgs)

    # Results: cap per image, then the box-or-mask branch from the first record.
    by_img = defaultdict(list)
    for r in results:
        by_img[r["image_id"]].append(r)
    dets = []
    for _, rs in by_img.items():
        if len(rs) > max_dets >= 0:
            rs = sorted(rs, key=lambda r: r["score"], reverse=True)[:max_dets]
        dets.extend(rs)
    dets = [dict(d) for d in dets]
    box_branch = "bbox" in dets[0]
    for i, d in enumerate(dets):
        _h, _w = imgs[d["image_id"]]["height"], imgs[d["image_id"]]["width"]
        if box_branch:
            x, y, bw, bh = d["bbox"]
            if "segmentation" not in d:
                d["segmentation"] = [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]]
            d["area"] = bw * bh
        else:
            d["area"] = float(mask_utils.area(d["segmentation"]))
            if "bbox" not in d:
                d["bbox"] = list(mask_utils.toBbox(d["segmentation"]))
        d["id"] = i + 1

    def keep(a):
        return a["category_id"] in cat_ids and a["image_id"] in imgs and a["area"] > 0

    gts = [dict(a) for a in gt["annotations"] if keep(a)]
    dets = [d for d in dets if keep(d)]
    for g in gts:
        g.setdefault("ignore", 0)
    G = defaultdict(list)
    for g in gts:
        G[g["image_id"], g["category_id"]].append(g)
    present = defaultdict(set)
    for g in gts:
        present[g["image_id"]].add(g["category_id"])
    Dd = defaultdict(list)
    for d in dets:
        neg = imgs[d["image_id"]].get("neg_category_ids")
        if (
            neg is not None
            and d["category_id"] not in neg
            and d["category_id"] not in present[d["image_id"]]
        ):
            continue
        Dd[d["image_id"], d["category_id"]].append(d)

    iou_thrs = np.linspace(0.5, 0.95, 10)
    rec_thrs = np.linspace(0.0, 1.0, 101)
    area_rng = [[0, 1e10], [0, 32**2], [32**2, 96**2], [96**2, 1e10]]
    T, R, K, A = len(iou_thrs), len(rec_thrs), len(cat_ids), len(area_rng)

    def ious_of(img_id, gl, dl):
        h, w = imgs[img_id]["height"], imgs[img_id]["width"]
        crowd = [0] * len(gl)
        if iou_type == "bbox":
            return np.asarray(
                mask_utils.iou([d["bbox"] for d in dl], [g["bbox"] for g in gl], crowd)
            )
        gr = [_to_rle(g["segmentation"], h, w) for g in gl]
        dr = [_to_rle(d["segmentation"], h, w) for d in dl]
        m = np.asarray(mask_utils.iou(dr, gr, crowd))
        if iou_type == "boundary":
            b = np.asarray(
                mask_utils.iou(
                    [boundary_rle_of(r, dilation_ratio) for r in dr],
                    [boundary_rle_of(r, dilation_ratio) for r in gr],
                    crowd,
                )
            )
            m = np.minimum(m, b)
        return m

    per = {}
    for k, cat in enumerate(cat_ids):
        for i in img_ids:
            gl, dl = G[i, cat], Dd[i, cat]
            if not gl and not dl:
                continue
            dl = [dl[j] for j in np.argsort([-d["score"] for d in dl], kind="mergesort")]
            ious = ious_of(i, gl, dl) if gl and dl else np.zeros((len(dl), len(gl)))
            nel = imgs[i].get("not_exhaustive_category_ids") or []
            for a, (lo, hi) in enumerate(area_rng):
                gig = np.array(
                    [1 if (g["ignore"] or g["area"] < lo or g["area"] > hi) else 0 for g in gl]
                )
                go = np.argsort(gig, kind="mergesort")
                gsorted = [gl[j] for j in go]
                gig = gig[go]
                io = ious[:, go] if ious.size else ious
                dtm = np.zeros((T, len(dl)))
                gtm = np.zeros((T, len(gl)))
                dig = np.zeros((T, len(dl)), dtype=bool)
                for t, thr in enumerate(iou_thrs):
                    for di, d in enumerate(dl):
                        best = min(thr, 1 - 1e-10)
                        m = -1
                        for gi in range(len(gsorted)):
                            if gtm[t, gi] > 0:
                                continue
                            if m > -1 and gig[m] == 0 and gig[gi] == 1:
                                break
                            if io[di, gi] < best:
                                continue
                            best = io[di, gi]
                            m = gi
                        if m == -1:
                            continue
                        dig[t, di] = gig[m]
                        dtm[t, di] = gsorted[m]["id"]
                        gtm[t, m] = d["id"]
                out = np.array(
                    [d["area"] < lo or d["area"] > hi or d["category_id"] in nel for d in dl],
                    dtype=bool,
                )
                dig = dig | ((dtm == 0) & out[None, :])
                per[k, a, i] = (np.array([d["score"] for d in dl]), dtm, dig, gig)

    precision = -np.ones((T, R, K, A))
    recall = -np.ones((T, K, A))
    for k in range(K):
        for a in range(A):
            E = [per[k, a, i] for i in img_ids if (k, a, i) in per]
            if not E:
                continue
            sc = np.concatenate([e[0] for e in E])
            order = np.argsort(-sc, kind="mergesort")
            dtm = np.concatenate([e[1] for e in E], axis=1)[:, order]
            dig = np.concatenate([e[2] for e in E], axis=1)[:, order]
            gig = np.concatenate([e[3] for e in E])
            npig = int(np.count_nonzero(gig == 0))
            if npig == 0:
                continue
            tps = np.logical_and(dtm, ~dig)
            fps = np.logical_and(~dtm.astype(bool), ~dig)
            tp_sum = np.cumsum(tps, axis=1).astype(float)
            fp_sum = np.cumsum(fps, axis=1).astype(float)
            for t in range(T):
                tp, fp = tp_sum[t], fp_sum[t]
                nd = len(tp)
                rc = tp / npig
                pr = (tp / (fp + tp + np.spacing(1))).tolist()
                recall[t, k, a] = rc[-1] if nd else 0
                for j in range(nd - 1, 0, -1):
                    if pr[j] > pr[j - 1]:
                        pr[j - 1] = pr[j]
                q = [0.0] * R
                for ri, pi in enumerate(np.searchsorted(rc, rec_thrs, side="left")):
                    if pi >= nd:
                        break
                    q[ri] = pr[pi]
                precision[t, :, k, a] = q

    lbl = ["all", "small", "medium", "large"]
    freq = [[k for k, c in enumerate(cat_ids) if cats[c].get("frequency") == f] for f in "rcf"]

    def summ(ap, thr=None, area="all", fg=None):
        aidx = [lbl.index(area)]
        s = precision if ap else recall
        if thr is not None:
            s = s[np.where(thr == iou_thrs)[0]]
        if ap:
            s = s[:, :, freq[fg], aidx] if fg is not None else s[:, :, :, aidx]
        else:
            s = s[:, :, aidx]
        v = s[s > -1]
        return -1 if len(v) == 0 else np.mean(v)

    stats = {
        "AP": summ(1),
        "AP50": summ(1, 0.5),
        "AP75": summ(1, 0.75),
        "APs": summ(1, area="small"),
        "APm": summ(1, area="medium"),
        "APl": summ(1, area="large"),
        "APr": summ(1, fg=0),
        "APc": summ(1, fg=1),
        "APf": summ(1, fg=2),
        f"AR@{max_dets}": summ(0),
    }
    for area in ("small", "medium", "large"):
        stats[f"AR{area[0]}@{max_dets}"] = summ(0, area=area)
    return {"precision": precision, "recall": recall, "stats": stats}
