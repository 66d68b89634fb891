"""ViTDet building blocks on tiny hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from rem_models.vitdet.anchors import AnchorGenerator, cell_anchors
from rem_models.vitdet.box_coder import DEFAULT_SCALE_CLAMP, BoxCoder, smooth_l1_sum
from rem_models.vitdet.boxes import clip_boxes, nonempty, pairwise_iou
from rem_models.vitdet.matcher import Matcher
from rem_models.vitdet.pooler import MultiLevelRoIAlign, assign_box_levels
from rem_models.vitdet.postprocess import (
    Detections,
    _paste_chunk,
    detector_postprocess,
    fast_rcnn_inference,
    paste_masks_in_image,
)
from rem_models.vitdet.sampling import subsample_labels
from rem_models.vitdet.vit import (
    Block,
    decomposed_rel_pos_bias,
    drop_path,
    relative_position_embeddings,
    resize_abs_pos,
    window_partition,
    window_unpartition,
)


def test_window_partition_pads_and_round_trips():
    x = torch.arange(2 * 5 * 6 * 3, dtype=torch.float32).view(2, 5, 6, 3) + 1
    windows, padded = window_partition(x, 4)
    assert padded == (8, 8) and windows.shape == (2 * 4, 4, 4, 3)
    # Window 1 of image 0 covers rows 0-3, columns 4-7: columns 6-7 are zero padding.
    assert torch.equal(windows[1, :, :2], x[0, :4, 4:6])
    assert not windows[1, :, 2:].any()
    assert not windows[3, 1:].any()  # rows 5-7 of the bottom-right window
    assert torch.equal(window_unpartition(windows, 4, padded, (5, 6)), x)


def test_window_block_attends_to_unmasked_padding():
    """A 5x5 grid in 4x4 windows: every window attends over 16 tokens, padded ones included
    (their keys are the qkv bias, not masked out)."""
    torch.manual_seed(0)
    block = Block(8, 2, window_size=4, input_size=(5, 5)).eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(1, 5, 5, 8)
    attn = block.attn
    normed = F.pad(block.norm1(x), (0, 0, 0, 3, 0, 3))  # (1, 8, 8, 8) with zero tokens
    mixed = torch.zeros(1, 8, 8, 8)
    for wy in range(2):
        for wx in range(2):
            tokens = normed[0, 4 * wy : 4 * wy + 4, 4 * wx : 4 * wx + 4].reshape(16, 8)
            q, k, v = attn.qkv(tokens).view(16, 3, 2, 4).permute(1, 2, 0, 3)  # (heads, 16, 4)
            out = torch.zeros(16, 2, 4)
            for h in range(2):
                logits = q[h] @ k[h].T / 2.0  # head dim 4
                for i in range(16):
                    for j in range(16):
                        dy, dx = i // 4 - j // 4, i % 4 - j % 4
                        logits[i, j] += (
                            q[h, i] @ attn.rel_pos_h[dy + 3] + q[h, i] @ attn.rel_pos_w[dx + 3]
                        )
                out[:, h] = logits.softmax(-1) @ v[h]
            mixed[0, 4 * wy : 4 * wy + 4, 4 * wx : 4 * wx + 4] = attn.proj(out.reshape(16, 8)).view(
                4, 4, 8
            )
    y = x + mixed[:, :5, :5]
    expected = y + block.mlp(block.norm2(y))
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_relative_positions_index_by_offset():
    table = torch.arange(5, dtype=torch.float32)[:, None].repeat(1, 2)  # row r holds r
    emb = relative_position_embeddings(3, 3, table)
    for i in range(3):
        for j in range(3):
            assert emb[i, j, 0] == i - j + 2
    # A 3-entry table is stretched linearly to the 5 offsets a 3x3 grid needs.
    small = torch.tensor([[0.0], [1.0], [2.0]])
    stretched = relative_position_embeddings(3, 3, small)
    assert stretched.shape == (3, 3, 1)
    assert stretched[1, 1, 0] == pytest.approx(1.0)  # offset 0 sits in the middle
    q = torch.randn(2, 6, 4)  # (batch*heads, 2x3 grid, head dim)
    rh, rw = torch.randn(3, 4), torch.randn(5, 4)
    bias = decomposed_rel_pos_bias(q, rh, rw, (2, 3), (2, 3))
    i, j = 4, 2  # query (1, 1), key (0, 2)
    assert bias[1, i, j] == pytest.approx(
        (q[1, i] @ rh[1 + 1] + q[1, i] @ rw[-1 + 2]).item(), abs=1e-5
    )


def test_abs_pos_drops_cls_and_resizes():
    pos = torch.full((1, 1 + 14 * 14, 6), 0.25)
    pos[0, 0] = 100.0  # the cls token entry must not leak into the grid
    grid = resize_abs_pos(pos, True, (64, 64))
    assert grid.shape == (1, 64, 64, 6)
    assert torch.allclose(grid, torch.full_like(grid, 0.25), atol=1e-6)  # bicubic keeps constants
    same = torch.randn(1, 16, 3)
    assert torch.equal(resize_abs_pos(same, False, (4, 4)), same.view(1, 4, 4, 3))


def test_drop_path_drops_whole_samples():
    x = torch.ones(1000, 3, 2)
    assert drop_path(x, 0.5, training=False) is x
    torch.manual_seed(0)
    out = drop_path(x, 0.5, training=True)
    per_sample = out.view(1000, -1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # kept samples rescaled by 1/keep
    assert (per_sample == per_sample[:, :1]).all()
    assert 400 < int((per_sample[:, 0] == 0).sum()) < 600


def test_box_coder_hand_case_and_round_trip():
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    tgt = torch.tensor([[5.0, 5.0, 15.0, 25.0]])
    deltas = coder.encode(src, tgt)
    assert deltas.tolist()[0] == pytest.approx([0.5, 1.0, 0.0, math.log(2.0)])
    weighted = BoxCoder((10.0, 10.0, 5.0, 5.0))
    torch.manual_seed(0)
    boxes = torch.rand(50, 2) * 100
    boxes = torch.cat([boxes, boxes + torch.rand(50, 2) * 50 + 1], dim=1)
    targets = torch.cat([boxes[:, :2] + 3, boxes[:, 2:] * 1.5], dim=1)
    assert torch.allclose(
        weighted.decode(weighted.encode(boxes, targets), boxes), targets, atol=1e-3
    )
    # Two classes per row decode independently; huge size deltas are clamped.
    both = weighted.decode(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0]]), src)
    assert both[0, :4].tolist() == [0.0, 0.0, 10.0, 10.0]
    assert both[0, 6] - both[0, 4] == pytest.approx(10 * math.exp(DEFAULT_SCALE_CLAMP), rel=1e-5)


def test_smooth_l1_sum():
    a, b = torch.tensor([0.0, 1.0, -3.0]), torch.tensor([0.5, 1.0, 0.0])
    assert smooth_l1_sum(a, b, 0.0).item() == pytest.approx(3.5)
    assert smooth_l1_sum(a, b, 1.0).item() == pytest.approx(0.125 + 2.5)


def test_box_geometry():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 12.0, 12.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 5.0, 9.0]])
    iou = pairwise_iou(a, b)
    assert iou.tolist() == [[pytest.approx(1 / 7), 0.0], [0.0, 0.0]]
    torch.manual_seed(0)
    xy = torch.rand(30, 2) * 50
    boxes = torch.cat([xy, xy + torch.rand(30, 2) * 30 + 0.5], dim=1)
    assert torch.allclose(pairwise_iou(boxes[:10], boxes), box_iou(boxes[:10], boxes), atol=1e-6)
    clipped = clip_boxes(torch.tensor([[-5.0, 3.0, 150.0, 90.0]]), (80, 100))
    assert clipped.tolist() == [[0.0, 3.0, 100.0, 80.0]]
    assert nonempty(torch.tensor([[0.0, 0.0, 1.0, 1.0], [3.0, 0.0, 3.0, 5.0]])).tolist() == [
        True,
        False,
    ]


def test_matcher_bands_and_low_quality_matches():
    matcher = Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True)
    quality = torch.tensor([[0.1, 0.5, 0.8, 0.2], [0.05, 0.25, 0.2, 0.25]])
    matches, labels = matcher(quality)
    assert matches.tolist() == [0, 0, 0, 1]
    # Bands alone give [0, -1, 1, 0]; ground truth 1's best IoU (0.25, a tie) claims 1 and 3.
    assert labels.tolist() == [0, 1, 1, 1] and labels.dtype == torch.int8
    plain = Matcher((0.3, 0.7), (0, -1, 1))
    assert plain(quality)[1].tolist() == [0, -1, 1, 0]
    matches, labels = Matcher((0.5,), (0, 1))(torch.zeros(0, 3))
    assert matches.tolist() == [0, 0, 0] and labels.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="one label per IoU band"):
        Matcher((0.5,), (0, -1, 1))


def test_subsample_labels_balances_and_is_seeded():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = subsample_labels(labels, 20, 0.25, 0)
    assert len(pos) == 5 and len(neg) == 15
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 5
    few = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1])
    pos, neg = subsample_labels(few, 8, 0.5, 0)
    assert sorted(pos.tolist()) == [0, 1] and len(neg) == 6  # negatives fill the gap
    # Multi-class labels with background = num_classes (ROI heads).
    classes = torch.tensor([0, 3, 5, 5, 2, -1])
    pos, neg = subsample_labels(classes, 100, 0.25, 5)
    assert sorted(pos.tolist()) == [0, 1, 4] and sorted(neg.tolist()) == [2, 3]
    runs = [
        subsample_labels(labels, 20, 0.25, 0, torch.Generator().manual_seed(3)) for _ in range(2)
    ]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_anchors_hand_case():
    cells = cell_anchors([32], [0.5, 1.0, 2.0])
    w = math.sqrt(32 * 32 / 0.5)
    assert cells[0].tolist() == pytest.approx([-w / 2, -w / 4, w / 2, w / 4])
    assert cells[1].tolist() == [-16.0, -16.0, 16.0, 16.0]
    gen = AnchorGenerator([32, 64], [0.5, 1.0, 2.0], [4, 8])
    anchors = gen([torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 1, 2)])
    assert [a.shape[0] for a in anchors] == [2 * 3 * 3, 1 * 2 * 3]
    # Anchor (y=1, x=2, a=1) of level 0 sits at index (1 * 3 + 2) * 3 + 1, centred on (8, 4).
    assert anchors[0][(1 * 3 + 2) * 3 + 1].tolist() == [8 - 16.0, 4 - 16.0, 8 + 16.0, 4 + 16.0]
    assert anchors[1][4].tolist() == [8 - 32.0, -32.0, 8 + 32.0, 32.0]


def test_box_levels_follow_the_fpn_rule():
    sizes = torch.tensor([224.0, 112.0, 448.0, 2000.0, 10.0, 223.0, 111.0])
    boxes = torch.stack([torch.zeros(7), torch.zeros(7), sizes, sizes], dim=1)
    levels = assign_box_levels(boxes, 2, 5) + 2
    assert levels.tolist() == [4, 3, 5, 5, 2, 3, 2]


def test_multilevel_roi_align_uses_each_boxs_level():
    pooler = MultiLevelRoIAlign(2, [1 / 4, 1 / 8, 1 / 16, 1 / 32])
    features = [torch.full((2, 1, 64 // 2**i, 64 // 2**i), float(i)) for i in range(4)]
    for image in range(2):
        for f in features:
            f[image] += 10 * image
    boxes = [
        torch.tensor([[0.0, 0.0, 224.0, 224.0], [0.0, 0.0, 20.0, 20.0]]),
        torch.tensor([[10.0, 10.0, 130.0, 130.0]]),
    ]
    out = pooler(features, boxes)
    assert out.shape == (3, 1, 2, 2)
    # Interior of each constant map: level 2 (p4), level 0 (p2), level 1 (p3) + 10 for image 1.
    assert out[:, 0, 0, 0].tolist() == [2.0, 0.0, 11.0]
    assert pooler(features, [torch.zeros(0, 4), torch.zeros(0, 4)]).shape == (0, 1, 2, 2)


def test_paste_masks_samples_pixel_centres():
    mask = torch.zeros(1, 28, 28)
    mask[:, :, :14] = 1.0
    pasted = paste_masks_in_image(mask, torch.tensor([[0.0, 0.0, 56.0, 56.0]]), (56, 60))
    assert pasted.dtype == torch.bool and pasted.shape == (1, 56, 60)
    # Column 27's centre falls 3/4 of the way into the mask's last 'on' column: value 0.75.
    assert pasted[0].sum(dim=1).tolist() == [28] * 56
    assert pasted[0, :, :28].all()
    shifted = paste_masks_in_image(mask, torch.tensor([[10.0, 5.0, 38.0, 33.0]]), (40, 40))
    assert shifted[0, 5:33, 10:24].all() and shifted[0].sum() == 28 * 14
    # The whole-image path (accelerators) gives the same pixels as the CPU crop path.
    torch.manual_seed(0)
    probs = torch.rand(3, 1, 28, 28)
    boxes = torch.tensor([[3.2, 4.7, 30.1, 22.9], [0.0, 0.0, 40.0, 40.0], [35.5, 30.0, 39.0, 39.5]])
    for i in range(3):
        crop, region = _paste_chunk(probs[i : i + 1], boxes[i : i + 1], (40, 40), crop=True)
        full, _ = _paste_chunk(probs[i : i + 1], boxes[i : i + 1], (40, 40), crop=False)
        assert torch.equal(full[:, region[0], region[1]], crop)
    assert paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6)).shape == (
        0,
        5,
        6,
    )


def test_fast_rcnn_inference_per_class_nms():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0, 0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0, 50.0, 50.0, 70.0, 70.0],
            [-5.0, 0.0, 30.0, 200.0, 0.0, 0.0, 1.0, 1.0],
        ]
    )
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.45, 0.05], [0.02, 0.01, 0.97]])
    det = fast_rcnn_inference(boxes, probs, (100, 100), score_thresh=0.05, nms_thresh=0.5, topk=10)
    # Class 0: proposal 1 overlaps proposal 0 (IoU 0.68) and is suppressed; class 1 keeps both
    # (disjoint boxes); proposal 2 scores below the threshold in both classes.
    assert det.classes.tolist() == [0, 1, 1]
    assert det.scores.tolist() == pytest.approx([0.6, 0.45, 0.3])
    assert det.keep.tolist() == [0, 1, 0]
    top1 = fast_rcnn_inference(boxes, probs, (100, 100), score_thresh=0.0, nms_thresh=0.5, topk=1)
    assert len(top1) == 1
    clipped = fast_rcnn_inference(
        boxes[2:], probs[2:], (100, 100), score_thresh=0.0, nms_thresh=0.5, topk=-1
    )
    assert clipped.boxes[0].tolist() == [0.0, 0.0, 30.0, 100.0]


def test_detector_postprocess_rescales_and_drops_empty_boxes():
    det = Detections(
        boxes=torch.tensor([[10.0, 20.0, 30.0, 40.0], [99.5, 0.0, 100.0, 10.0]]),
        scores=torch.tensor([0.9, 0.8]),
        classes=torch.tensor([2, 1]),
        keep=torch.tensor([0, 1]),
        mask_probs=torch.ones(2, 1, 28, 28),
    )
    out = detector_postprocess(det, (50, 100), (100, 150))
    assert out["boxes"].tolist() == [[15.0, 40.0, 45.0, 80.0], [149.25, 0.0, 150.0, 20.0]]
    assert out["masks"].shape == (2, 100, 150)
    assert out["masks"][0].sum() == 30 * 40
    # A zero-width box (kept by NMS, as in detectron2) is dropped here.
    det.boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [100.0, 0.0, 100.0, 10.0]])
    out = detector_postprocess(det, (50, 100), (50, 98))
    assert out["labels"].tolist() == [2] and out["masks"].shape == (1, 50, 98)
