"""Matrix NMS against a direct, one-pair-at-a-time evaluation of its definition.

Definition (SOLOv2, Sec. 3.3.4; the reference ``matrix_nms``): masks sorted by score; for
mask j, every higher-scored mask i of the same class gives the ratio
f(IoU_ij) / f(comp_i), where comp_i is the largest IoU of mask i with a higher-scored mask of
its class; the decay of j is the smallest ratio, and never above 1 (in the reference the
minimum also runs over the top mask's row, which contributes f(0) / f(0) = 1).
"""

from __future__ import annotations

import math

import pytest
import torch

from rem_models.solo.matrix_nms import mask_iou_matrix, matrix_nms

torch.set_num_threads(1)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    inter = float((a & b).sum())
    union = float((a | b).sum())
    return inter / union if union else 0.0


def loop_matrix_nms(masks, labels, scores, kernel: str, sigma: float) -> list[float]:
    n = len(scores)
    f = (lambda x: math.exp(-sigma * x * x)) if kernel == "gaussian" else (lambda x: 1.0 - x)
    comp = []
    for i in range(n):
        comp.append(
            max([_iou(masks[k], masks[i]) for k in range(i) if labels[k] == labels[i]] or [0.0])
        )
    out = []
    for j in range(n):
        decay = 1.0
        for i in range(j):
            if labels[i] == labels[j]:
                decay = min(decay, f(_iou(masks[i], masks[j])) / f(comp[i]))
        out.append(float(scores[j]) * decay)
    return out


def _random_masks(seed: int, n: int, size: int = 24) -> torch.Tensor:
    """Overlapping rectangles, so IoUs take many different values."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        y0, x0 = torch.randint(0, size - 6, (2,), generator=g).tolist()
        h, w = torch.randint(4, 12, (2,), generator=g).tolist()
        masks[i, y0 : y0 + h, x0 : x0 + w] = True
    return masks


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_definition(kernel, seed):
    n = 30
    masks = _random_masks(seed, n)
    g = torch.Generator().manual_seed(100 + seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    scores = torch.rand(n, generator=g, dtype=torch.float64).sort(descending=True).values
    got = matrix_nms(masks, labels, scores, kernel=kernel, sigma=2.0)
    want = loop_matrix_nms(masks, labels, scores, kernel, 2.0)
    assert got.dtype == torch.float64
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_hand_case_two_overlapping_masks():
    # Two 4x4 squares overlapping in a 2x4 strip: IoU = 8 / 24 = 1/3.
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 2:6, 0:4] = True
    masks[2, 2:6, 0:4] = True  # same pixels as mask 1 but another class: not suppressed
    labels = torch.tensor([0, 0, 1])
    scores = torch.tensor([0.9, 0.8, 0.7])
    out = matrix_nms(masks, labels, scores, sigma=2.0)
    assert out[0] == pytest.approx(0.9)
    assert out[1] == pytest.approx(0.8 * math.exp(-2.0 / 9.0))
    assert out[2] == pytest.approx(0.7)
    linear = matrix_nms(masks, labels, scores, kernel="linear")
    assert linear[1] == pytest.approx(0.8 * (1 - 1 / 3))


def test_decay_never_raises_a_score():
    # Mask 2 overlaps only mask 1, which is itself heavily covered by mask 0 (comp_1 large):
    # f(IoU_12) / f(comp_1) > 1, yet the score must not grow.
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 0:6, 0:6] = True
    masks[1, 0:6, 0:7] = True
    masks[2, 0:6, 6:10] = True
    labels = torch.zeros(3, dtype=torch.long)
    scores = torch.tensor([0.9, 0.8, 0.7])
    out = matrix_nms(masks, labels, scores)
    assert out[2] == pytest.approx(0.7)
    assert out[2] == pytest.approx(loop_matrix_nms(masks, labels, scores, "gaussian", 2.0)[2])


def test_empty_and_iou_matrix():
    empty = matrix_nms(torch.zeros(0, 4, 4, dtype=torch.bool), torch.zeros(0), torch.zeros(0))
    assert empty.shape == (0,)
    masks = _random_masks(5, 6)
    iou = mask_iou_matrix(masks)
    for i in range(6):
        for j in range(6):
            assert float(iou[i, j]) == pytest.approx(_iou(masks[i], masks[j]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    masks = _random_masks(7, 40)
    labels = torch.randint(0, 2, (40,))
    scores = torch.rand(40).sort(descending=True).values
    cpu = matrix_nms(masks, labels, scores)
    gpu = matrix_nms(masks.cuda(), labels.cuda(), scores.cuda())
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-6)
