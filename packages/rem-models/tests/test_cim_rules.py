"""CIM's pseudo-labelling rules on hand-built proposal sets whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rem_models.cim.geometry import containment_matrix, mask_boxes, mask_iou_matrix
from rem_models.cim.pcl import pcl_loss, peak_clusters
from rem_models.cim.pseudo_labels import (
    PseudoGts,
    assign_targets,
    big_proposals,
    branch_thresholds,
    complete_instance,
    mine_pseudo_gts,
    resample_pseudo_gts,
    select_seeds,
)

torch.set_num_threads(1)


def _rect(h: int, w: int, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def test_iou_containment_and_boxes_on_4x4_masks():
    a = _rect(4, 4, 0, 0, 4, 2)  # top half, 8 px
    b = _rect(4, 4, 0, 0, 2, 2)  # top-left quarter, 4 px (inside a)
    c = _rect(4, 4, 2, 2, 4, 4)  # bottom-right quarter, disjoint from both
    empty = np.zeros((4, 4), dtype=bool)
    masks = np.stack([a, b, c, empty])
    iou = mask_iou_matrix(masks)
    assert iou[0, 1] == pytest.approx(4 / 8) and iou[1, 0] == pytest.approx(0.5)
    assert iou[0, 2] == 0 and iou[3, 3] == 0 and iou[0, 0] == 1
    asy = containment_matrix(masks)
    assert asy[0, 1] == 1.0  # all of b lies in a
    assert asy[1, 0] == pytest.approx(0.5)  # half of a lies in b
    assert asy[0, 3] == 0 and asy[2, 0] == 0
    np.testing.assert_array_equal(
        mask_boxes(masks), [[0, 0, 4, 2], [0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 0, 0]]
    )


def test_branch_thresholds_grow_with_the_branch():
    assert branch_thresholds(0) == pytest.approx((0.25, 0.5))
    assert branch_thresholds(1) == pytest.approx((0.35, 0.6))
    assert branch_thresholds(2) == pytest.approx((0.45, 0.7))


def test_big_proposal_needs_85_percent_of_90_percent_of_proposals():
    h = w = 20
    masks = [_rect(h, w, 0, 0, 20, 20)]  # whole image: contains everything
    masks += [_rect(h, w, 2 * i, 0, 2 * i + 2, 2) for i in range(9)]  # 9 small disjoint boxes
    # A region holding 8 of the 11 proposals (itself + 7 boxes), 73% < 90%: not big.
    masks.append(_rect(h, w, 0, 0, 14, 2))
    asy = containment_matrix(np.stack(masks))
    big = big_proposals(asy)
    assert big.tolist() == [True] + [False] * 10
    # Containing 85% of a proposal is not enough: the ">" in "> 85%" is strict.
    half = np.stack([_rect(20, 20, 0, 0, 20, 20), _rect(20, 20, 0, 0, 20, 20)])
    asy = containment_matrix(half)
    asy[0, 1] = 0.85
    assert big_proposals(asy).tolist() == [False, True]


def test_seeds_are_top_10_percent_then_mask_nms():
    n = 20
    scores = np.linspace(1.0, 0.05, n)  # proposal 0 best
    iou = np.eye(n)
    iou[0, 1] = iou[1, 0] = 0.3  # overlaps the best above the k=0 NMS threshold 0.25
    assert select_seeds(scores, iou, 0.25).tolist() == [0]  # top 2 -> NMS removes 1
    assert select_seeds(scores, iou, 0.35).tolist() == [0, 1]  # k=1: 0.3 <= 0.35 survives
    # 21 proposals -> ceil(2.1) = 3 candidates; at least one seed for a tiny set.
    assert len(select_seeds(np.linspace(1, 0, 21), np.eye(21), 0.25)) == 3
    assert select_seeds(np.array([0.2, 0.9]), np.eye(2), 0.25).tolist() == [1]


def _instance_set() -> np.ndarray:
    """Proposals on a 10x20 image: 0 a part (left half) of an object 1; 2 the object plus a bit;
    3 covers only 80% of the part; 4 the whole image."""
    return np.stack(
        [
            _rect(10, 20, 0, 0, 5, 10),  # 0: part, 50 px
            _rect(10, 20, 0, 0, 10, 10),  # 1: whole object, 100 px
            _rect(10, 20, 0, 0, 11, 10),  # 2: object + a column of background
            _rect(10, 20, 1, 0, 5, 10),  # 3: covers 40 of the part's 50 px (80%)
            _rect(10, 20, 0, 0, 20, 10),  # 4: whole image (big)
        ]
    )


def test_complete_instance_takes_the_most_intact_container():
    masks = _instance_set()
    asy = containment_matrix(masks)
    big = big_proposals(asy)
    assert big.tolist() == [False, False, False, False, True]
    integrity = np.array([0.3, 0.9, 0.6, 0.95, 0.99])
    # 3 has higher integrity but holds only 80% of the seed; 4 is big: the answer is 1.
    assert complete_instance(0, asy, integrity, big) == 1
    # Nothing better than the seed itself -> the seed.
    assert complete_instance(0, asy, np.array([0.9, 0.5, 0.5, 0.1, 1.0]), big) == 0
    # A tie with the seed keeps the seed.
    assert complete_instance(0, asy, np.array([0.9, 0.9, 0.2, 0.1, 1.0]), big) == 0


def test_mine_pseudo_gts_replaces_each_seed_by_its_complete_instance():
    masks = _instance_set()
    iou, asy = mask_iou_matrix(masks), containment_matrix(masks)
    # Class 1 of 2: the part (0) scores best, so it is the only seed (top ceil(0.5) = 1).
    scores = np.array([[0.0, 0.6], [0.0, 0.2], [0.0, 0.1], [0.0, 0.05], [0.0, 0.05]])
    integrity = np.array([[0, 0.3], [0, 0.9], [0, 0.6], [0, 0.95], [0, 0.99]])
    labels = np.array([False, True])
    gts = mine_pseudo_gts(scores, integrity, labels, iou, asy, k=1)
    assert gts.index.tolist() == [1] and gts.category.tolist() == [1]
    assert gts.weight.tolist() == pytest.approx([0.6])  # the seed's score
    # MIL (no integrity): the class score stands in, and no container outscores the seed.
    gts = mine_pseudo_gts(scores, None, labels, iou, asy, k=0)
    assert gts.index.tolist() == [0]
    # An absent class gets nothing.
    assert len(mine_pseudo_gts(scores, None, np.array([False, False]), iou, asy, 0)) == 0


def test_resampling_draws_by_weight_and_keeps_unique():
    gts = PseudoGts(np.array([4, 7, 9]), np.array([0, 0, 1]), np.array([0.5, 0.0, 0.5], np.float32))
    for seed in range(20):
        out = resample_pseudo_gts(gts, np.random.default_rng(seed))
        assert set(out.index.tolist()) <= {4, 9}  # zero weight is never drawn
        assert len(set(out.index.tolist())) == len(out)
        assert out.index.tolist() == sorted(out.index.tolist())  # original order
    a = resample_pseudo_gts(gts, np.random.default_rng(3))
    b = resample_pseudo_gts(gts, np.random.default_rng(3))
    assert a.index.tolist() == b.index.tolist()
    # Over many draws a heavy pseudo-GT survives more often than a light one.
    light = PseudoGts(np.array([0, 1]), np.array([0, 0]), np.array([0.9, 0.1], np.float32))
    rng = np.random.default_rng(0)
    kept = [resample_pseudo_gts(light, rng).index.tolist() for _ in range(400)]
    assert sum(0 in k for k in kept) > 3 * sum(1 in k for k in kept)


def test_assignment_by_max_iou_with_ignore_background_and_integrity_targets():
    masks = np.stack(
        [
            _rect(10, 10, 0, 0, 4, 4),  # 0: the pseudo-GT (16 px)
            _rect(10, 10, 0, 0, 4, 3),  # 1: IoU 12/16 = 0.75
            _rect(10, 10, 0, 0, 4, 2),  # 2: IoU 8/16 = 0.5
            _rect(10, 10, 0, 0, 1, 2),  # 3: IoU 2/16 = 0.125 -> background
            _rect(10, 10, 6, 6, 10, 10),  # 4: no overlap -> ignored
            _rect(10, 10, 0, 0, 10, 10),  # 5: IoU 0.16 -> background
        ]
    )
    iou = mask_iou_matrix(masks)
    big = np.zeros(6, dtype=bool)
    gts = PseudoGts(np.array([0]), np.array([2]), np.array([0.8], np.float32))
    a = assign_targets(iou, big, gts, k=0)  # cls_thr 0.25, iou_thr 0.5
    assert a.labels.tolist() == [3, 3, 3, 0, 0, 0]
    assert a.weights.tolist() == pytest.approx([0.8, 0.8, 0.8, 0.8, 0.0, 0.8])
    assert a.iou_targets.tolist() == [1, 1, 0, 0, 0, 0]  # 0.5 is not > 0.5
    assert a.gt.tolist() == [0, 0, 0, 0, -1, 0]
    a = assign_targets(iou, big, gts, k=2)  # iou_thr 0.7: 0.75 still positive
    assert a.iou_targets.tolist() == [1, 1, 0, 0, 0, 0]
    big[1] = True  # a big proposal is background whatever its IoU
    a = assign_targets(iou, big, gts, k=0)
    assert a.labels.tolist() == [3, 0, 3, 0, 0, 0]


def test_peak_clusters_grow_from_the_mean_of_covering_proposals():
    masks = np.stack(
        [
            _rect(10, 10, 0, 0, 4, 4),  # 0 covers the peak
            _rect(10, 10, 0, 0, 4, 5),  # 1 covers the peak
            _rect(10, 10, 0, 0, 5, 4),  # 2 covers the peak
            _rect(10, 10, 2, 2, 6, 6),  # 3 does not cover (1, 1): IoU 4/28 with the centre
            _rect(10, 10, 7, 7, 10, 10),  # 4 far away -> ignored
        ]
    )
    clusters = peak_clusters(masks, [(1, 1, 2)])
    # Mean of 0, 1, 2 is 1 on the 4x4 square, 2/3 on the extra row/column: > 0.7 -> the square.
    np.testing.assert_array_equal(clusters.centres[0], masks[0])
    assert clusters.categories.tolist() == [2]
    # IoUs with the centre: 1, 16/20, 16/20, 4/28, 0.
    assert clusters.labels.tolist() == [3, 3, 3, 0, -1]
    assert clusters.cluster.tolist() == [0, 0, 0, 0, -1]
    # A peak no proposal covers makes no cluster.
    assert len(peak_clusters(masks, [(9, 0, 1)]).categories) == 0


def test_pcl_loss_matches_the_hand_formula():
    masks = np.stack([_rect(6, 6, 0, 0, 3, 3), _rect(6, 6, 0, 0, 3, 3), _rect(6, 6, 0, 0, 6, 6)])
    clusters = peak_clusters(masks, [(1, 1, 0)])
    assert clusters.labels.tolist() == [1, 1, 0]  # third: IoU 9/36 -> background
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    weight = torch.tensor([0.5])
    # Cluster: -0.5 * 2 * log(mean(0.8, 0.4)); background: -0.5 * log(0.7); divided by N = 3.
    expected = (-0.5 * 2 * np.log(0.6) - 0.5 * np.log(0.7)) / 3
    assert float(pcl_loss(probs, clusters, weight)) == pytest.approx(expected, rel=1e-6)


def test_an_image_without_proposals_gives_empty_targets():
    empty = np.zeros((0, 5, 6), dtype=bool)
    iou, asy = mask_iou_matrix(empty), containment_matrix(empty)
    assert iou.shape == (0, 0) and asy.shape == (0, 0) and mask_boxes(empty).shape == (0, 4)
    gts = mine_pseudo_gts(np.zeros((0, 2)), None, np.array([True, True]), iou, asy, 0)
    assert len(gts) == 0
    a = assign_targets(iou, big_proposals(asy), gts, 0)
    assert a.labels.shape == (0,)
