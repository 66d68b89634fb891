"""SeqTR tokenisation, quantisation, contour sampling, decoding, losses and EMA on hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rem_models.seqtr.ema import ModelEMA
from rem_models.seqtr.language import (
    LanguageEncoder,
    build_vocabulary,
    encode,
    load_word_vectors,
    tokenize,
)
from rem_models.seqtr.losses import label_smoothed_ce, token_weights
from rem_models.seqtr.sequences import (
    box_token_targets,
    contour_points,
    dequantize,
    mask_token_targets,
    quantize,
    rasterize,
    shuffle_points,
    tokens_to_polygon,
)
from rem_models.seqtr.transforms import lsj_transform

torch.set_num_threads(1)


def test_tokenize_follows_seqtr_rules() -> None:
    assert tokenize("The man's hat-stand, left/right!") == [
        "the",
        "mans",
        "hat",
        "stand",
        "left",
        "right",
    ]
    assert tokenize('"A (big)* #1: dog;?"') == ["a", "big", "1", "dog"]


def test_vocabulary_and_encoding() -> None:
    words = build_vocabulary(["the red ball", "The blue ball"])
    assert words == ["PAD", "UNK", "the", "red", "ball", "blue"]
    vocab = {w: i for i, w in enumerate(words)}
    assert encode("the green ball", vocab, 5) == [2, 1, 4, 0, 0]
    assert encode("the red ball the red ball", vocab, 4) == [2, 3, 4, 2]
    assert encode("...", vocab, 3) == [1, 0, 0]


def test_word_vectors_from_glove_text(tmp_path) -> None:
    f = tmp_path / "vec.txt"
    f.write_text("red 1 2 3\nzebra 9 9 9\nball 4 5 6\n")
    table = load_word_vectors(f, ["PAD", "UNK", "red", "ball"], dim=3)
    np.testing.assert_array_equal(table, [[0, 0, 0], [0, 0, 0], [1, 2, 3], [4, 5, 6]])
    f.write_text("red 1 2\n")
    with pytest.raises(Exception, match="line 1"):
        load_word_vectors(f, ["PAD", "UNK", "red"], dim=3)


def test_sentence_feature_is_max_over_non_pad_tokens() -> None:
    torch.manual_seed(0)
    enc = LanguageEncoder(10, 6, 4)
    ids = torch.tensor([[3, 4, 5, 0, 0]])
    # like SeqTR, the GRU runs over the padded sequence (no packing); pad outputs are ignored
    words, _ = enc.lstm(enc.embedding(ids))
    expected = words[:, :3].max(dim=1).values
    assert not torch.equal(expected, words.max(dim=1).values)
    torch.testing.assert_close(enc(ids), expected)


def test_quantize_floor_and_clamp() -> None:
    pad = torch.tensor([[640.0, 320.0]])
    coords = torch.tensor([[320.0, 160.0, 639.9, 400.0]])
    assert quantize(coords, pad, 1000).tolist() == [[500, 500, 999, 999]]
    assert dequantize(torch.tensor([[500, 250]]), pad, 1000).tolist() == [[320.0, 80.0]]
    assert quantize(torch.tensor([[-5.0, 3.2]]), pad, 1000).tolist() == [[0, 10]]


def test_box_and_mask_targets_end_tokens() -> None:
    pad = torch.tensor([[100.0, 100.0]])
    assert box_token_targets(torch.tensor([[10.0, 20.0, 30.5, 99.0]]), pad, 10).tolist() == [
        [1, 2, 3, 9, 10]
    ]
    # padded size 1280 > 1000 bins: SeqTR's -1 pad would quantise to a valid bin; the validity
    # mask still turns it into END
    pad = torch.tensor([[1280.0, 1280.0]])
    pts = torch.tensor([[[128.0, 256.0], [-1.0, -1.0]]])
    valid = torch.tensor([[True, False]])
    assert mask_token_targets(pts, valid, pad, 1000).tolist() == [[100, 200, 1000, 1000, 1000]]


def test_contour_sampling_keeps_every_ceil_n_over_r_point() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:10, 4:14] = True
    full = contour_points(mask, 1000)
    assert len(full) == 2 * (9 + 4)  # CHAIN_APPROX_NONE: every boundary pixel of a 10x5 box
    assert full[:, 0].min() == 4 and full[:, 0].max() == 13
    sampled = contour_points(mask, 8)
    step = math.ceil(26 / 8)
    np.testing.assert_array_equal(sampled, full[::step])
    assert contour_points(np.zeros((4, 4), bool), 8).shape == (0, 2)
    # two blobs: the larger one is kept
    mask[15:17, 15:17] = True
    assert contour_points(mask, 1000)[:, 1].max() == 9


def test_polygon_decoding_rules() -> None:
    pad = (100.0, 50.0)
    # cut at END (100); the odd fifth value is dropped
    assert tokens_to_polygon([10, 20, 30, 40, 50, 100, 7], pad, 100) == [10.0, 10.0, 30.0, 20.0]
    assert tokens_to_polygon([10, 20, 30, 100], pad, 100) == [10.0, 10.0]
    # exactly four values: pycocotools reads an XYWH box
    box = rasterize([2, 1, 3, 2], 6, 8)
    expected = np.zeros((6, 8), bool)
    expected[1:3, 2:5] = True
    np.testing.assert_array_equal(box, expected)
    assert not rasterize([1, 1], 6, 8).any()
    tri = rasterize([0, 0, 8, 0, 8, 6, 0, 6], 6, 8)
    assert tri.all()


def test_shuffle_moves_only_valid_points() -> None:
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6, 9, 9]])
    valid = torch.tensor([[True, True, True, False]])
    out = shuffle_points(tokens, valid, 1.0, torch.Generator().manual_seed(3))
    assert out[0, 6:].tolist() == [9, 9]
    pairs = sorted(tuple(p) for p in out[0, :6].reshape(3, 2).tolist())
    assert pairs == [(1, 2), (3, 4), (5, 6)]
    assert torch.equal(shuffle_points(tokens, valid, -1.0, None), tokens)


def test_label_smoothed_ce_matches_formula() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[0, 4, 4], [1, 2, 4]])
    weights = token_weights(targets, "mask", 4, 1.5, 0.1)
    assert weights.flatten().tolist() == pytest.approx([1, 0.1, 0.1, 1, 1, 0.1])
    assert token_weights(targets, "box", 4, 1.5, 0.1)[:, 0].tolist() == [1.5, 1.5]
    loss = label_smoothed_ce(logits, targets, weights, 0.1)
    total = 0.0
    for b in range(2):
        for t in range(3):
            logp = torch.log_softmax(logits[b, t], 0)
            q = torch.full((5,), 0.1 / 5)
            q[targets[b, t]] = 0.9
            total += float(weights[b, t]) * float(-(q * logp).sum())
    assert float(loss) == pytest.approx(total / 6, rel=1e-6)


def test_ema_decay_parameters_and_buffers() -> None:
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEMA(model)
    assert ema.decay() == pytest.approx(0.1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(1.0)
        model.num_batches_tracked.fill_(7)
    ema.update(model)  # decay 0.1: 0.1 * old + 0.9 * new
    assert ema.ema.weight.tolist() == pytest.approx([1.9, 1.9])
    assert ema.ema.running_mean.tolist() == pytest.approx([0.9, 0.9])
    assert int(ema.ema.num_batches_tracked) == 7
    assert ema.decay() == pytest.approx(2 / 11)
    ema.updates = 10_000
    assert ema.decay() == 0.999


def test_lsj_crop_keeps_the_box() -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((300, 400, 3), np.uint8)
    mask = np.zeros((300, 400), bool)
    mask[200:250, 300:380] = True
    for _ in range(20):
        out, box, m = lsj_transform(image, np.array([300, 200, 380, 250.0]), rng, 128, mask)
        assert out.shape[0] <= 128 and out.shape[1] <= 128
        assert m.shape == out.shape[:2]
        # the object fits in every 128 crop here, so it is never cut: aspect 80/50 survives
        assert (box[2] - box[0]) / (box[3] - box[1]) == pytest.approx(1.6, rel=1e-4)
        ys, xs = np.nonzero(m)
        # nearest-neighbour mask resize: edges within 1.5 px of the scaled box
        assert abs(xs.min() - box[0]) <= 1.5 and abs(xs.max() + 1 - box[2]) <= 1.5
        assert abs(ys.min() - box[1]) <= 1.5 and abs(ys.max() + 1 - box[3]) <= 1.5
    a = lsj_transform(image, np.array([300, 200, 380, 250.0]), np.random.default_rng(5), 128)
    b = lsj_transform(image, np.array([300, 200, 380, 250.0]), np.random.default_rng(5), 128)
    np.testing.assert_array_equal(a[1], b[1])
