"""PRM peak stimulation, CIM's peak selection and the peak clusters, on hand-built maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rem_models.cim.pcl import pcl_loss, peak_clusters
from rem_models.cim.peaks import image_peaks, peak_aggregation, peak_map, select_peaks
from rem_models.cim.peaks_io import peak_record
from rem_models.cim.prm import PrmConfig, PrmModel

torch.set_num_threads(1)


def _cells(mask: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in idx) for idx in torch.nonzero(mask)}


def test_peaks_are_3x3_maxima_first_of_ties_above_the_median():
    a = torch.tensor([[1.0, 5, 5, 0], [0, 0, 0, 0], [2, 0, 0, 3]])
    # 7 zeros -> lower median 0. (0,1) beats its equal right neighbour (first in row-major).
    assert _cells(peak_map(a[None, None])[0, 0]) == {(0, 1), (2, 0), (2, 3)}
    # Median 4 drops the local maximum 2; the trailing 4s lose to the 5 / to the first 4.
    b = torch.tensor([[5.0, 0, 2, 0, 5, 4, 4]])
    assert _cells(peak_map(b[None, None])[0, 0]) == {(0, 0), (0, 4)}
    # Padding is -inf: a negative border cell can be a peak (zero padding would hide it).
    c = torch.tensor([[-3.0, -5.0]])
    assert _cells(peak_map(c[None, None])[0, 0]) == {(0, 0)}
    # Plateaus and diagonal ties: only the first cell of each window survives.
    assert _cells(peak_map(torch.full((1, 1, 2, 2), 5.0))[0, 0]) == {(0, 0)}
    d = torch.tensor([[7.0, 0], [0, 7]])
    assert _cells(peak_map(d[None, None])[0, 0]) == {(0, 0)}
    # Each (image, class) map is filtered with its own median.
    stacked = torch.stack([torch.stack([a[:1, :2], c]), torch.stack([c, a[:1, :2]])])
    found = peak_map(stacked)
    assert _cells(found[0, 0]) == {(0, 1)} and _cells(found[0, 1]) == {(0, 0)}
    assert _cells(found[1, 0]) == {(0, 0)} and _cells(found[1, 1]) == {(0, 1)}


def test_aggregation_is_the_peak_mean_and_only_peaks_get_gradient():
    a = torch.tensor([[1.0, 5, 5, 0], [0, 0, 0, 0], [2, 0, 0, 3]])
    b = torch.tensor([[0.0, 1, 0, 0], [0, 0, 0, 6], [0, 0, 0, 0]])
    maps = torch.stack([a, b])[None].requires_grad_(True)  # (1, 2, 3, 4)
    # Every 0 cell has an earlier 0 or a larger value in its window.
    assert _cells(peak_map(maps.detach())[0, 1]) == {(0, 1), (1, 3)}
    logits = peak_aggregation(maps, peak_map(maps))
    assert logits[0, 0].item() == pytest.approx((5 + 2 + 3) / 3)
    assert logits[0, 1].item() == pytest.approx((1 + 6) / 2)
    (logits[0, 0] * 3 + logits[0, 1] * 2).backward()  # each peak gets weight / its map's count
    expected = torch.zeros(1, 2, 3, 4)
    expected[0, 0, 0, 1] = expected[0, 0, 2, 0] = expected[0, 0, 2, 3] = 1.0
    expected[0, 1, 0, 1] = expected[0, 1, 1, 3] = 1.0
    torch.testing.assert_close(maps.grad, expected, rtol=0, atol=1e-7)


class _FixedMaps(nn.Module):
    """A 'backbone' that returns the same hand-made maps for any input."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = nn.Parameter(maps, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps[None].expand(len(x), -1, -1, -1)


def _hand_model() -> PrmModel:
    maps = torch.zeros(3, 8, 8)
    maps[0, 1, 1], maps[0, 5, 6], maps[0, 6, 2] = 12.0, 30.0, 4.0  # 12, 30 > 10; 4 is not
    maps[1, 2, 5], maps[1, 4, 4] = 7.0, 10.0  # none > 10: fallback to the strongest (10)
    maps[2, 3, 3] = 50.0  # class 2 is not in the image: never used
    model = PrmModel(_FixedMaps(maps), 3, 4, PrmConfig(num_classes=3, input_size=32, upsample=1))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(3)[:, :, None, None])
        model.classifier.bias.zero_()
    return model


def test_selection_threshold_fallback_order_and_pixel_mapping():
    model = _hand_model()
    assert model.frame_size == 8
    found = image_peaks(model, torch.zeros(3, 32, 32), [1, 0, 0], threshold=10)
    assert [(p.category, p.row, p.col, p.score) for p in found] == [
        (1, 4, 4, 10.0),  # ascending score: later, stronger peaks overwrite earlier clusters
        (0, 1, 1, 12.0),
        (0, 5, 6, 30.0),
    ]
    # With a lower threshold class 1 keeps both of its peaks and class 0 its 4 too.
    low = select_peaks(model.response_maps(torch.zeros(1, 3, 32, 32))[0].detach(), [0, 1], 3.0)
    assert [p.score for p in low] == [4.0, 7.0, 10.0, 12.0, 30.0]
    # 8-cell frame -> a 100x60 image: x = int(col * 100 / 8), y = int(row * 60 / 8).
    record = peak_record(5, 60, 100, found, 8, categories=[11, 22, 33])
    got = [(p.x, p.y, p.category_id, p.row, p.col) for p in record.peaks]
    assert got == [(50, 30, 22, 4, 4), (12, 7, 11, 1, 1), (75, 37, 11, 5, 6)]


def _rect(x1: int, y1: int, x2: int, y2: int, size: int = 10) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def test_stronger_later_peaks_overwrite_and_the_rest_is_background_or_ignored():
    masks = np.stack(
        [
            _rect(0, 0, 4, 4),  # A
            _rect(0, 0, 5, 4),  # B
            _rect(0, 0, 6, 4),  # C
            _rect(2, 2, 8, 8),  # E: IoU 4/48 with A, 8/52 with C -> background
            _rect(7, 8, 10, 10),  # far: touches no centre -> ignored
        ]
    )
    weak, strong = (0, 0, 0), (5, 0, 1)
    # weak covers A, B, C: mean > 0.7 = A; IoUs 1, .8, .67 -> class 0.
    # strong covers only C: centre C; IoUs .67, .83, 1 -> class 1, overwriting.
    clusters = peak_clusters(masks, [weak, strong])
    assert clusters.labels.tolist() == [2, 2, 2, 0, -1]
    assert clusters.cluster.tolist() == [1, 1, 1, 1, -1]  # E takes C's weight (nearest)
    assert clusters.categories.tolist() == [0, 1]
    np.testing.assert_array_equal(clusters.centres[0], masks[0])
    np.testing.assert_array_equal(clusters.centres[1], masks[2])
    # In the other order the class-0 peak wins everything (max IoU would split A from B, C).
    assert peak_clusters(masks, [strong, weak]).labels.tolist() == [1, 1, 1, 0, -1]


def test_an_image_without_peaks_makes_every_proposal_background():
    masks = np.stack([_rect(0, 0, 4, 4), _rect(5, 5, 9, 9)])
    clusters = peak_clusters(masks, [])
    assert clusters.labels.tolist() == [0, 0] and clusters.cluster.tolist() == [-1, -1]
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    # Background proposals with no cluster weigh 1: -(log .25 + log .5) / 2.
    expected = -(np.log(0.25) + np.log(0.5)) / 2
    assert float(pcl_loss(probs, clusters)) == pytest.approx(expected, rel=1e-6)
    # A peak no proposal covers makes no cluster and leaves everything ignored.
    lone = peak_clusters(masks, [(9, 0, 0)])
    assert lone.labels.tolist() == [-1, -1] and float(pcl_loss(probs, lone)) == 0.0
