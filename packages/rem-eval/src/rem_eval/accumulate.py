"""COCOeval.accumulate / LVISEval.accumulate: precision, recall and scores arrays.

Per (category k, area a, maxDets m) the reference concatenates, image by image, each group's
first m detections, stable-sorts them by score, and turns cumulative TP / FP counts into the
interpolated precision at each recall threshold (eval.md §1.6). Here one lexsort orders every
detection by (category, -score, image, rank) — the same order, since ties keep the
concatenation order — and each (k, m) slice is a filtered view of it, with the area ranges and
IoU thresholds handled together as rows.

The arithmetic is the reference's: integer cumulative sums turned into float64,
``rc = tp / npig``, ``pr = tp / (fp + tp + eps)``, a suffix maximum, and the first index with
``rc >= r`` (0 precision when there is none). That index is found on the integer counts: since
``j / npig`` is monotone in j, ``rc[i] >= r`` exactly when ``tp[i] >= J(r)`` with J(r) the
smallest j whose float quotient reaches r, which lets one searchsorted serve all rows. The
arrays come out bit-equal to the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = np.spacing(1)


@dataclass
class Accumulated:
    """precision (T, R, K, A, M), recall (T, K, A, M), scores (T, R, K, A, M); -1 = no GT.

    For LVIS, M is 1 and the caller drops that axis.
    """

    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def _first_reaching(npig: int, rec_thrs: np.ndarray) -> np.ndarray:
    """J(r): the smallest count j with float(j / npig) >= r (npig + 1 if none)."""
    quotients = np.arange(npig + 1, dtype=np.float64) / npig
    return np.searchsorted(quotients, rec_thrs, side="left")


def accumulate(
    tp: np.ndarray,
    fp: np.ndarray,
    d_k: np.ndarray,
    d_score: np.ndarray,
    d_imgpos: np.ndarray,
    d_rank: np.ndarray,
    npig: np.ndarray,
    rec_thrs: np.ndarray,
    max_dets: list[int] | None,
) -> Accumulated:
    """Accumulate per-detection outcomes.

    ``tp``/``fp``: (D, A, T) booleans; ``npig``: (K, A) non-ignored GT counts. ``max_dets``
    None means no per-group cut (LVIS).
    """
    D, A, T = tp.shape
    K = npig.shape[0]
    R = rec_thrs.size
    m_list = [None] if max_dets is None else list(max_dets)
    M = len(m_list)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    order = np.lexsort((d_rank, d_imgpos, -d_score, d_k))
    k_sorted = d_k[order]
    k_edges = np.searchsorted(k_sorted, np.arange(K + 1), side="left")
    jr_cache: dict[int, np.ndarray] = {}
    for k in range(K):
        areas = np.flatnonzero(npig[k] > 0)
        if areas.size == 0:
            continue
        for a in areas.tolist():
            n = int(npig[k, a])
            if n not in jr_cache:
                jr_cache[n] = _first_reaching(n, rec_thrs)
        jr = np.stack([jr_cache[int(npig[k, a])] for a in areas.tolist()])  # (A', R)
        sl = order[k_edges[k] : k_edges[k + 1]]
        ranks = d_rank[sl]
        for mi, m in enumerate(m_list):
            sel = sl if m is None else sl[ranks < m]
            nd = sel.size
            rows = areas.size * T
            if nd == 0:
                recall[:, k, areas, mi] = 0
                precision[:, :, k, areas, mi] = 0
                scores[:, :, k, areas, mi] = 0
                continue
            # (A', T, nd) -> rows of cumulative counts, row = (area, threshold).
            tp_cum = np.cumsum(tp[sel][:, areas, :].transpose(1, 2, 0), axis=2).reshape(rows, nd)
            fp_cum = np.cumsum(fp[sel][:, areas, :].transpose(1, 2, 0), axis=2).reshape(rows, nd)
            tp_f = tp_cum.astype(float)
            npig_rows = np.repeat(npig[k, areas].astype(float), T)
            recall[:, k, areas, mi] = (tp_f[:, -1] / npig_rows).reshape(areas.size, T).T
            pr = tp_f / (fp_cum.astype(float) + tp_f + _EPS)
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            # First index with rc >= r, for every row at once (integer keys, offset per row).
            # J beyond nd + 1 means unreachable; clipping keeps each query inside its row.
            queries = np.minimum(np.repeat(jr, T, axis=0), nd + 1)  # (rows, R)
            offset = (np.arange(rows) * (nd + 2))[:, None]
            flat = (tp_cum + offset).ravel()
            inds = np.searchsorted(flat, (queries + offset).ravel(), side="left").reshape(rows, R)
            inds -= (np.arange(rows) * nd)[:, None]
            # The reference fills until the first index past the end, then stops.
            ok = np.logical_and.accumulate(inds < nd, axis=1)
            safe = np.where(ok, inds, 0)
            q = np.where(ok, np.take_along_axis(pr, safe, axis=1), 0.0)
            ss = np.where(ok, d_score[sel][safe], 0.0)
            precision[:, :, k, areas, mi] = q.reshape(areas.size, T, R).transpose(1, 2, 0)
            scores[:, :, k, areas, mi] = ss.reshape(areas.size, T, R).transpose(1, 2, 0)
    return Accumulated(precision, recall, scores)
