"""Pairwise mask geometry between the proposals of one image: IoU and containment."""

from __future__ import annotations

import numpy as np

from rem_core import masks as mask_ops


def _areas(masks: np.ndarray) -> np.ndarray:
    m = np.asarray(masks, dtype=bool)
    return m.reshape(len(m), int(np.prod(m.shape[1:]))).sum(1).astype(np.float64)


def _areas_and_rles(masks: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    return _areas(masks), [mask_ops.encode(x) for x in np.asarray(masks, dtype=bool)]


def intersection_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """(N, M) pixel counts |A_i ∩ B_j| for (N, H, W) and (M, H, W) boolean masks.

    Computed on RLEs (pycocotools' crowd IoU is |A ∩ B| / |A|), so memory stays near the masks'
    size rather than N x H x W floats; counts are exact integers stored as float64.
    """
    area_a, rle_a = _areas_and_rles(a)
    rle_b = rle_a if b is None else _areas_and_rles(b)[1]
    if not rle_a or not rle_b:
        return np.zeros((len(rle_a), len(rle_b)), dtype=np.float64)
    ratio = mask_ops.iou(rle_a, rle_b, [1] * len(rle_b))
    return np.rint(ratio * area_a[:, None])


def mask_iou_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """(N, M) mask IoU; a pair of empty masks has IoU 0."""
    inter = intersection_matrix(a, b)
    area_a = _areas(a)
    area_b = area_a if b is None else _areas(b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def containment_matrix(masks: np.ndarray) -> np.ndarray:
    """(N, N) ``asy[i, j] = |M_i ∩ M_j| / |M_j|``: how much of proposal j lies inside i.

    Row i is "what i contains"; an empty M_j gives 0 in column j.
    """
    inter = intersection_matrix(masks)
    area = np.diag(inter).copy()
    return np.divide(inter, area[None, :], out=np.zeros_like(inter), where=area[None, :] > 0)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 XYXY boxes (pixel edges: x1 = first column, x2 = last column + 1).

    An empty mask gets the box (0, 0, 0, 0).
    """
    m = np.asarray(masks, dtype=bool)
    boxes = np.zeros((len(m), 4), dtype=np.float32)
    cols = m.any(1)  # (N, W)
    rows = m.any(2)  # (N, H)
    for i in range(len(m)):
        xs = np.flatnonzero(cols[i])
        ys = np.flatnonzero(rows[i])
        if xs.size:
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes
