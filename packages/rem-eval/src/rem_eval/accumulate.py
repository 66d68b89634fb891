"""COCOeval.accumulate / LVISEval.accumulate: precision, recall and scores arrays.

Per (category k, area a, maxDets m) the reference concatenates, image by image, each group's
first m detections, stable-sorts them by score, and turns cumulative TP / FP counts into the
interpolated precision at each recall threshold (eval.md §1.6). Here one sort orders every
detection by (category, -score, image, rank) — the same order, since ties keep the
concatenation order — and each (k, m) block is a slice or a filter of it.

Within a block only true positives need visiting. The precision envelope (running maximum from
the right) peaks at true positives: after each TP the precision only falls until the next one.
And the first index where recall reaches a threshold r is the J(r)-th TP, with J(r) the smallest
count j whose float quotient j / npig reaches r (the quotient is monotone in j). So per
(area, threshold) row the work is: the TPs, the false positives counted before each (detections
without any candidate match are FP exactly when their area is in range, so they need one
running count per area range, not per threshold), ``pr = j / (fp + j + eps)`` computed with the
reference's float64 operations, a suffix maximum over the TPs, and lookups. The arrays come out
bit-equal to the reference's.
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


def accumulation_order(
    d_k: np.ndarray, d_score: np.ndarray, d_imgpos: np.ndarray, d_rank: np.ndarray
) -> np.ndarray:
    """Detections sorted by (k, -score, image, rank): the reference's per-category order."""
    return np.lexsort((d_rank, d_imgpos, -d_score, d_k))


def _suffix_max_by_row(values: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Running maximum from the right within each row of events sorted by (row, position).

    Pointer doubling: after the step with shift s each entry holds the maximum of the next 2s
    entries of its row, so log2(longest row) vectorised steps suffice; only comparisons, so the
    values are exact.
    """
    env = values.copy()
    n = env.size
    shift = 1
    while shift < n:
        same = row[shift:] == row[:-shift]
        if not same.any():
            break
        np.maximum(env[:-shift], np.where(same, env[shift:], env[:-shift]), out=env[:-shift])
        shift *= 2
    return env


def accumulate(
    cand: np.ndarray,
    cand_tp: np.ndarray,
    cand_fp: np.ndarray,
    in_range: np.ndarray,
    d_k: np.ndarray,
    d_score: np.ndarray,
    d_imgpos: np.ndarray,
    d_rank: np.ndarray,
    npig: np.ndarray,
    rec_thrs: np.ndarray,
    max_dets: list[int] | None,
) -> Accumulated:
    """Accumulate per-detection outcomes.

    ``cand``: (D,) column of each detection in ``cand_tp`` / ``cand_fp`` (A, T, C), or -1 for a
    detection without candidate pairs (then it is FP where ``in_range`` (A, D) holds and
    ignored elsewhere). ``npig``: (K, A) non-ignored GT counts. ``max_dets`` None means no
    per-group cut (LVIS).
    """
    A, T, _ = cand_tp.shape
    D = d_k.size
    K = npig.shape[0]
    R = rec_thrs.size
    m_list = [None] if max_dets is None else list(max_dets)
    M = len(m_list)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    order = accumulation_order(d_k, d_score, d_imgpos, d_rank)
    k_edges = np.searchsorted(d_k[order], np.arange(K + 1), side="left")
    rank_o = d_rank[order]
    score_o = d_score[order]
    cand_o = cand[order]
    plain_fp_o = in_range[:, order] & (cand_o < 0)[None, :]  # (A, D)
    jr_cache: dict[int, np.ndarray] = {}
    for k in range(K):
        areas = np.flatnonzero(npig[k] > 0)
        if areas.size == 0:
            continue
        for a in areas.tolist():
            n = int(npig[k, a])
            if n not in jr_cache:
                jr_cache[n] = _first_reaching(n, rec_thrs)
        rows = areas.size * T
        # J per (area, threshold) row and recall threshold.
        jr = np.repeat(np.stack([jr_cache[int(npig[k, a])] for a in areas.tolist()]), T, axis=0)
        npig_rows = np.repeat(npig[k, areas].astype(float), T)
        e0, e1 = int(k_edges[k]), int(k_edges[k + 1])
        ranks = rank_o[e0:e1]
        for mi, m in enumerate(m_list):
            if m is None or (ranks.size and int(ranks.max()) < m):
                keep: slice | np.ndarray = slice(e0, e1)
            else:
                keep = np.flatnonzero(ranks < m) + e0
            sc = score_o[keep]
            nd = sc.size
            if nd == 0:
                recall[:, k, areas, mi] = 0
                precision[:, :, k, areas, mi] = 0
                scores[:, :, k, areas, mi] = 0
                continue
            cols = cand_o[keep]
            cpos = np.flatnonzero(cols >= 0)  # block positions of candidate detections
            ccol = cols[cpos]
            tpc = cand_tp[areas][:, :, ccol].reshape(rows, cpos.size)
            fpc_cum = np.cumsum(
                cand_fp[areas][:, :, ccol].reshape(rows, cpos.size), axis=1, dtype=np.int64
            )
            plain_cum = np.cumsum(plain_fp_o[:, keep][areas], axis=1, dtype=np.int64)  # (A', nd)
            ev_row, ev_c = np.nonzero(tpc)  # TPs, sorted by (row, position)
            ntp = np.bincount(ev_row, minlength=rows)
            tstart = np.cumsum(ntp) - ntp
            j = (np.arange(ev_row.size) - tstart[ev_row] + 1).astype(float)
            ev_pos = cpos[ev_c]
            fp_before = plain_cum[ev_row // T, ev_pos] + fpc_cum[ev_row, ev_c]
            pr = j / (fp_before.astype(float) + j + _EPS)
            env = _suffix_max_by_row(pr, ev_row)
            recall[:, k, areas, mi] = (ntp / npig_rows).reshape(areas.size, T).T
            # Index of the J-th TP (J >= 1); J = 0 means index 0 (max over all TPs).
            valid = (jr == 0) | (jr <= ntp[:, None])
            ok = np.logical_and.accumulate(valid, axis=1)
            ev_idx = tstart[:, None] + np.maximum(jr - 1, 0)
            has_tp = ok & (ntp[:, None] > 0)
            safe = np.where(has_tp, ev_idx, 0)
            q = np.where(has_tp, env[safe] if env.size else 0.0, 0.0)
            at = np.where(jr == 0, 0, ev_pos[safe] if ev_pos.size else 0)
            ss = np.where(ok, sc[np.where(ok, at, 0)], 0.0)
            precision[:, :, k, areas, mi] = q.reshape(areas.size, T, R).transpose(1, 2, 0)
            scores[:, :, k, areas, mi] = ss.reshape(areas.size, T, R).transpose(1, 2, 0)
    del D
    return Accumulated(precision, recall, scores)
