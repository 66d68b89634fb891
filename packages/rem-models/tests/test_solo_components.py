"""SOLO-family building blocks on small hand-made cases with obvious answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from rem_models.solo import aggregator as agg
from rem_models.solo.deform_conv import DeformConv2d
from rem_models.solo.fpn import FPN
from rem_models.solo.layers import coord_features, points_nms
from rem_models.solo.losses import dice_loss, focal_loss, mean_dice
from rem_models.solo.postprocess import boxes_from_masks, paste_masks
from rem_models.solo.resize import rescaled_size, resize_target
from rem_models.solo.resnet import ResNet
from rem_models.solo.targets import assign_levels, mask_targets

torch.set_num_threads(1)

RANGES = [(1.0, 48.0), (48.0, 96.0), (96.0, 192.0), (192.0, 384.0), (384.0, 2048.0)]


def _square(size: int, y0: int, x0: int, side: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    return mask


def _assign(masks, labels, *, grids=(4, 4, 4, 4, 4), sigma=0.2, min_pixels=1, size=64):
    masks = torch.stack(masks) if masks else torch.zeros(0, size, size, dtype=torch.uint8)
    boxes = []
    for m in masks:
        ys, xs = m.nonzero(as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return assign_levels(
        boxes,
        torch.tensor(labels, dtype=torch.long),
        masks,
        (size, size),
        grids=grids,
        scale_ranges=RANGES,
        sigma=sigma,
        min_mask_pixels=min_pixels,
        background=7,
    )


class TestAssignment:
    def test_centre_cell_only_for_a_small_centre_region(self):
        # A 32x32 square at (8, 8) in a 64x64 image: centre of mass (23.5, 23.5); with S = 4
        # (16 px cells) that is cell (1, 1); the sigma = 0.2 region (+-3.2 px) stays inside it.
        levels = _assign([_square(64, 8, 8, 32)], [2])
        first = levels[0]
        assert first.cells.tolist() == [5] and first.instances.tolist() == [0]
        assert first.labels.tolist() == [7] * 5 + [2] + [7] * 10
        # sqrt(area) = 32 is only in the first scale range.
        assert all(level.cells.numel() == 0 for level in levels[1:])

    def test_centre_region_is_clipped_to_the_3x3_neighbourhood(self):
        # sigma = 1: the region spans the whole box (pixels 8..39 -> cells 0..2 with S = 8,
        # 8 px cells: centre 23.5 -> cell 2), clipped to rows/cols 1..3 around it... The box
        # reaches cells 1..4 (8 / 8 = 1, (23.5 + 16) / 8 = 4.9); the 3x3 clip keeps 1..3.
        levels = _assign([_square(64, 8, 8, 32)], [0], grids=(8, 8, 8, 8, 8), sigma=1.0)
        cells = sorted(levels[0].cells.tolist())
        assert cells == [r * 8 + c for r in (1, 2, 3) for c in (1, 2, 3)]

    def test_later_instances_overwrite_and_small_masks_are_skipped(self):
        a = _square(64, 8, 8, 32)  # cell (1, 1) with S = 4
        b = _square(64, 10, 10, 28)  # centre 23.5 as well: the same cell
        tiny = _square(64, 50, 50, 3)  # 9 pixels
        levels = _assign([a, b, tiny], [1, 2, 3], min_pixels=10)
        first = levels[0]
        assert first.cells.tolist() == [5, 5]  # both pairs kept (SOLOv2 trains both)
        assert first.labels[5] == 2  # the category of the last one
        cells, owners = first.owners()
        assert cells.tolist() == [5] and owners.tolist() == [1]

    def test_no_instances(self):
        levels = _assign([], [])
        assert len(levels) == 5
        assert all(lv.cells.numel() == 0 and (lv.labels == 7).all() for lv in levels)


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_mask_targets_equal_opencv_bilinear_rescale(stride):
    # mmcv.imrescale(mask, 1 / stride) is cv2.resize(..., INTER_LINEAR) on the uint8 mask.
    rng = np.random.default_rng(stride)
    masks = (rng.random((3, 64, 96)) < 0.5).astype(np.uint8)
    masks[0] = 0
    masks[0, 5:40, 17:70] = 1
    got = mask_targets(torch.from_numpy(masks), stride, (64 // stride + 2, 96 // stride))
    for i in range(3):
        want = cv2.resize(masks[i], (96 // stride, 64 // stride), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(got[i, : 64 // stride].numpy(), want)
        assert not got[i, 64 // stride :].any()  # canvas beyond the rescaled mask stays 0


def test_focal_and_dice_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    labels = torch.tensor([1, 2])  # cell 0 is class 1, cell 1 background (C = 2)
    p = torch.sigmoid(logits)

    def term(prob, positive):
        if positive:
            return -0.25 * (1 - prob) ** 2 * math.log(prob)
        return -0.75 * prob**2 * math.log(1 - prob)

    expected = (
        term(p[0, 0], False) + term(p[0, 1], True) + term(p[1, 0], False) + term(p[1, 1], False)
    ) / (1 + 1)
    assert float(focal_loss(logits, labels, 1)) == pytest.approx(float(expected), rel=1e-5)

    pred = torch.tensor([[[10.0, -10.0], [10.0, -10.0]]])
    target = torch.tensor([[[1, 0], [1, 0]]])
    s = torch.sigmoid(torch.tensor(10.0))
    want = 1 - 2 * 2 * s / (2 * s * s + 2 * (1 - s) ** 2 + 0.001 + 2 + 0.001)
    assert float(dice_loss(pred, target)[0]) == pytest.approx(float(want), rel=1e-6)


def test_mean_dice_without_positives_is_a_differentiable_zero():
    anchor = torch.randn(3, 4, requires_grad=True)
    loss = mean_dice([torch.zeros(0, 2, 2)], [torch.zeros(0, 2, 2)], anchor.sum(), 3.0)
    value = float(loss.detach())
    assert value == 0.0 and math.copysign(1.0, value) > 0
    loss.backward()
    assert anchor.grad is not None and not anchor.grad.any()


def test_points_nms_keeps_2x2_local_maxima():
    heat = torch.tensor([[0.1, 0.5, 0.2], [0.3, 0.4, 0.6], [0.9, 0.2, 0.1]])[None, None]
    kept = points_nms(heat)[0, 0]
    # A cell survives if no cell above, left or above-left of it is higher.
    expected = torch.tensor([[0.1, 0.5, 0.0], [0.3, 0.0, 0.6], [0.9, 0.0, 0.0]])
    assert torch.equal(kept, expected)


def test_coord_features():
    c = coord_features(torch.zeros(2, 5, 3, 2))
    assert c.shape == (2, 2, 3, 2)
    assert c[0, 0].tolist() == [[-1.0, 1.0]] * 3
    assert c[1, 1].tolist() == [[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]


class TestAggregator:
    def test_corners_on_a_halved_grid(self):
        cells = agg.neighbour_cells(40, 20, "corners", torch.device("cpu"))
        # Cell (1, 3) -> (19 / 39, 57 / 39) = (0.487, 1.462) on the 20 x 20 mask grid.
        assert cells[1 * 40 + 3].tolist() == [[0, 2], [1, 2], [1, 1], [0, 1]]
        assert cells.shape == (1600, 4, 2)

    def test_cross_is_clamped_at_the_border(self):
        cells = agg.neighbour_cells(50, 40, "cross", torch.device("cpu"))
        # Cell (49, 0) -> (39, 0): its neighbours below and left fall outside and are clamped.
        assert cells[49 * 50].tolist() == [[38, 0], [39, 0], [39, 0], [39, 1], [39, 0]]
        same = agg.neighbour_cells(12, 12, "cross", torch.device("cpu"))
        assert same[5 * 12 + 6].tolist() == [[4, 6], [5, 5], [5, 6], [5, 7], [6, 6]]

    def test_mode_rule_and_weight_count(self):
        assert agg.neighbour_mode([40, 36, 24, 16, 12], [40, 36, 24, 16, 12], "auto") == "cross"
        assert agg.neighbour_mode([50, 40, 24, 16, 12], [40, 36, 24, 16, 12], "auto") == "cross"
        assert agg.neighbour_mode([40, 36, 24, 16, 12], [20, 18, 12, 8, 6], "auto") == "corners"
        # 5 masks + 16 context channels, 3x3 convs 21 -> 4 -> 4 -> 1: 756+4 + 144+4 + 36+1.
        assert agg.weight_count(21, 3, 3, 4) == 945
        assert agg.weight_count(20, 3, 3, 4) == 909

    def test_aggregate_equals_one_network_per_cell(self):
        g = torch.Generator().manual_seed(0)
        layout = agg.weight_layout(6, 3, 3, 4)
        inputs = torch.randn(5, 6, 9, 7, generator=g, dtype=torch.float64)
        weights = torch.randn(5, agg.weight_count(6, 3, 3, 4), generator=g, dtype=torch.float64)
        got = agg.aggregate(inputs, weights, layout)
        for p in range(5):
            x, at = inputs[p : p + 1], 0
            for i, (shape, nb) in enumerate(layout):
                n = math.prod(shape)
                w, b = weights[p, at : at + n].reshape(shape), weights[p, at + n : at + n + nb]
                at += n + nb
                x = F.conv2d(x, w, b, padding=1)
                x = F.relu(x) if i < 2 else x
            assert torch.allclose(got[p], x[0, 0], atol=1e-10)


def test_rescaled_size_follows_mmcv():
    assert rescaled_size(480, 640, (1333, 800)) == (800, 1067)
    assert rescaled_size(427, 640, (1333, 800)) == (800, 1199)
    assert rescaled_size(500, 2000, (1333, 800)) == (333, 1333)  # long edge binds
    assert rescaled_size(800, 1067, (1333, 800)) == (800, 1067)  # idempotent
    target = {
        "boxes": torch.tensor([[2.0, 4.0, 6.0, 8.0]]),
        "labels": torch.tensor([0]),
        "masks": torch.ones(1, 10, 20, dtype=torch.uint8),
    }
    out = resize_target(target, (20, 40))
    assert out["masks"].shape == (1, 20, 40) and out["masks"].all()
    assert out["boxes"].tolist() == [[4.0, 8.0, 12.0, 16.0]]


def test_paste_masks_crops_the_padding_and_boxes():
    probs = torch.zeros(1, 2, 4)
    probs[0, :, 3] = 1.0  # the last stride-4 column: input pixels 12..15
    inside = paste_masks(probs, (8, 16), (8, 16), (8, 16), 0.5)
    assert inside[0, :, 12:].all() and not inside[0, :, :12].any()
    # The same column lies in the padding of a 12 px wide image: nothing survives the crop.
    cropped = paste_masks(probs, (8, 16), (8, 12), (8, 12), 0.5)
    assert cropped.shape == (1, 8, 12) and not cropped.any()
    masks = torch.zeros(2, 6, 7, dtype=torch.bool)
    masks[0, 1:3, 2:6] = True
    assert boxes_from_masks(masks).tolist() == [[2.0, 1.0, 6.0, 3.0], [0.0, 0.0, 0.0, 0.0]]


class TestDeformConv:
    def test_zero_offsets_are_a_plain_convolution(self):
        torch.manual_seed(0)
        x = torch.randn(2, 4, 9, 11)
        v1 = DeformConv2d(4, 6, 3, padding=1, modulated=False)
        assert torch.allclose(v1(x), F.conv2d(x, v1.weight, padding=1), atol=1e-5)
        v2 = DeformConv2d(4, 6, 3, padding=1, modulated=True)
        # Zero mask logits: every tap weighted by sigmoid(0) = 1/2.
        assert torch.allclose(v2(x), 0.5 * F.conv2d(x, v2.weight, padding=1), atol=1e-5)
        assert set(dict(v1.named_parameters())) == {
            "weight",
            "conv_offset.weight",
            "conv_offset.bias",
        }
        assert v2.conv_offset_mask.out_channels == 27

    def test_offsets_are_y_then_x(self):
        torch.manual_seed(1)
        x = torch.randn(1, 3, 8, 8)
        conv = DeformConv2d(3, 2, 3, padding=1, modulated=False)
        with torch.no_grad():
            conv.conv_offset.bias[0::2] = 1.0  # every tap samples one row lower
        # out[y] = sum_k w_k x[y + k] (rows outside the image are 0): no top padding, 2 below.
        lower = F.conv2d(F.pad(x, (1, 1, 0, 2)), conv.weight)
        assert torch.allclose(conv(x), lower, atol=1e-5)


class TestBackbone:
    @pytest.mark.parametrize("depth", [18, 50])
    def test_torchvision_names_and_shapes(self, depth):
        with torch.device("meta"):
            ours = ResNet(depth).state_dict()
            ref = getattr(torchvision.models, f"resnet{depth}")().state_dict()
        ref = {k: v.shape for k, v in ref.items() if not k.startswith("fc.")}
        assert {k: v.shape for k, v in ours.items()} == ref

    def test_frozen_stages_and_norm_eval(self):
        net = ResNet(18, frozen_stages=1)
        net.train()
        assert not any(p.requires_grad for p in net.layer1.parameters())
        assert not net.conv1.weight.requires_grad
        assert all(p.requires_grad for p in net.layer2.parameters())
        assert not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
        out = net(torch.randn(1, 3, 64, 96))
        assert [tuple(o.shape[1:]) for o in out] == [
            (64, 16, 24),
            (128, 8, 12),
            (256, 4, 6),
            (512, 2, 3),
        ]

    def test_fpn_levels(self):
        fpn = FPN([8, 16, 32, 64], 16)
        feats = [torch.randn(1, c, 32 // 2**i, 48 // 2**i) for i, c in enumerate([8, 16, 32, 64])]
        outs = fpn(feats)
        assert [tuple(o.shape[-2:]) for o in outs] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
        assert torch.equal(outs[4], outs[3][:, :, ::2, ::2])  # P6: 1x1 max-pool, stride 2
