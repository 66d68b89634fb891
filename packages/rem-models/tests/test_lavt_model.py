"""LAVT components on hand-built cases, the tokenisation, the recipe and the data rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from rem_core.errors import RemError
from rem_core.schemas import ReferringSample
from rem_models import get_model, get_model_config
from rem_models.lavt.data import referring_gt_mask, square_image, square_mask
from rem_models.lavt.decoder import upsample_to
from rem_models.lavt.pwam import PWAM
from rem_models.lavt.swin import (
    PatchEmbed,
    PatchMerging,
    relative_position_index,
    shift_attention_mask,
    window_merge,
    window_partition,
)
from rem_models.lavt.text import LavtTokenizer
from rem_models.lavt.training import (
    REFERENCE_BERT_LAYERS,
    lavt_loss,
    no_decay,
    param_groups,
    poly_factor,
    set_bert_trainable,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_relative_position_index_window_2():
    # Tokens (0,0) (0,1) (1,0) (1,1); offset (dr, dc) -> (dr + 1) * 3 + (dc + 1).
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), expected)


def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 4 * 6 * 1, dtype=torch.float32).view(2, 4, 6, 1)
    windows = window_partition(x, 2)
    assert windows.shape == (2 * 6, 4, 1)
    assert windows[1, :, 0].tolist() == [2.0, 3.0, 8.0, 9.0]  # second window of the first row
    assert torch.equal(window_merge(windows, 2, 4, 6), x)


def test_shift_mask_against_a_loop():
    hp, wp, win, shift = 8, 4, 4, 2
    mask = shift_attention_mask(hp, wp, win, shift)

    # Region of every padded position: 3 bands per axis as Swin cuts them.
    def band(i, size):
        return 0 if i < size - win else (1 if i < size - shift else 2)

    labels = np.array([[band(r, hp) * 3 + band(c, wp) for c in range(wp)] for r in range(hp)])
    for w_index in range(mask.shape[0]):
        r0, c0 = divmod(w_index, wp // win)
        tokens = [labels[r0 * win + i, c0 * win + j] for i in range(win) for j in range(win)]
        for a in range(win * win):
            for b in range(win * win):
                expected = 0.0 if tokens[a] == tokens[b] else -100.0
                assert mask[w_index, a, b].item() == expected


def test_patch_merging_order():
    merge = PatchMerging(1)
    with torch.no_grad():
        merge.norm.weight.fill_(1.0)
        merge.norm.bias.zero_()
    seen = {}
    merge.reduction.register_forward_pre_hook(lambda _m, a: seen.setdefault("x", a[0]))
    tokens = torch.tensor([[0.0], [1.0], [2.0], [3.0]]).view(1, 4, 1)  # 2x2 grid, row-major
    merge(tokens, (2, 2))
    raw = torch.tensor([0.0, 2.0, 1.0, 3.0])  # (even, even) (odd, even) (even, odd) (odd, odd)
    expected = (raw - raw.mean()) / torch.sqrt(raw.var(unbiased=False) + 1e-5)
    assert torch.allclose(seen["x"].flatten(), expected, atol=1e-6)
    # Odd sizes are zero-padded: a 3 x 3 grid merges into 2 x 2 tokens.
    assert PatchMerging(4)(torch.randn(2, 9, 4), (3, 3)).shape == (2, 4, 8)


def test_patch_embed_pads_to_the_patch():
    embed = PatchEmbed(4, 3, 8)
    assert embed(torch.randn(1, 3, 33, 30)).shape == (1, 8, 9, 8)


def test_upsample_only_when_smaller():
    big = torch.zeros(1, 1, 4, 4)
    small = torch.tensor([[[[0.0, 3.0], [6.0, 9.0]]]])
    up = upsample_to(small, big)
    # align_corners=True keeps the corners and interpolates linearly between them.
    assert up[0, 0, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert upsample_to(big, small) is big


def test_padding_words_have_no_effect():
    torch.manual_seed(0)
    pwam = PWAM(8, 6, num_heads=2).eval()
    x = torch.randn(2, 10, 8)
    words = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = pwam(x, words, mask)
    changed = words.clone()
    changed[0, 3:] = torch.randn(2, 6) * 100
    assert torch.allclose(pwam(x, changed, mask), out, atol=1e-6)
    assert not torch.allclose(pwam(x, words, torch.ones_like(mask)), out, atol=1e-3)


def test_model_contract_and_sizes():
    torch.manual_seed(0)
    model = get_model("lavt_test").eval()
    images = torch.rand(2, 3, 50, 70) * 255
    ids = torch.tensor([[101, 5, 6, 102, 0], [101, 7, 102, 0, 0]])
    mask = (ids != 0).long()
    logits = model(images, ids, mask)
    assert logits.shape == (2, 2, 50, 70)
    masks = model.predict_masks(images, ids, mask)
    assert masks.dtype == torch.bool and torch.equal(masks, logits.argmax(1) == 1)
    # 3,980,773 model + 3,628,864 BERT parameters, as the oracle's summary counts them.
    assert sum(p.numel() for p in model.parameters()) == 7_609_637
    assert get_model_config("lavt").swin.window_size == 12


def test_tokenizer_follows_lavt(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "cafe", "left", "##s"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    tok = LavtTokenizer(path, max_tokens=6)
    assert tok.encode("The RED Café.") == [2, 5, 6, 7, 1, 3]  # lower-cased, accents stripped
    ids, mask = tok(["the reds", "the red red red red red red"])
    assert ids.tolist() == [[2, 5, 6, 9, 3, 0], [2, 5, 6, 6, 6, 6]]  # cut: [SEP] dropped
    assert mask.tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]
    assert LavtTokenizer(tmp_path, max_tokens=20).vocab_size == len(vocab)  # a folder works
    with pytest.raises(RemError, match="no such vocabulary file"):
        LavtTokenizer(tmp_path / "missing.txt")


def test_loss_is_weighted_cross_entropy():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    nll0 = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]
    nll1 = -torch.log_softmax(torch.tensor([0.0, 1.0]), 0)[1]
    expected = (0.9 * nll0 + 1.1 * nll1) / (0.9 + 1.1)
    assert lavt_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_weight_decay_groups_follow_lavt():
    with torch.device("meta"):
        model = get_model("lavt")
    exempt = {n for n, _ in model.named_parameters() if no_decay(n)}
    # LAVT: backbone names containing "norm" (patch embed, 24 blocks x 2, 3 merges, 4 outputs:
    # 2 tensors each) and the 24 relative-position tables; the decoder's BNs still decay.
    assert len(exempt) == 2 * (1 + 24 * 2 + 3 + 4) + 24
    assert not any(n.startswith(("decoder.", "text_encoder.")) for n in exempt)
    groups = param_groups(model, 0.01)
    assert groups[0]["weight_decay"] == 0.0 and groups[1]["weight_decay"] == 0.01
    assert len(groups[0]["params"]) == len(exempt)


def test_bert_layers_trained_as_the_reference():
    with torch.device("meta"):
        model = get_model("lavt")
    set_bert_trainable(model, "reference")
    bert = model.text_encoder.bert
    layers = bert.encoder.layer
    assert all(
        p.requires_grad for i in range(REFERENCE_BERT_LAYERS) for p in layers[i].parameters()
    )
    assert not any(p.requires_grad for i in (10, 11) for p in layers[i].parameters())
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert all(p.requires_grad for p in model.backbone.parameters())
    set_bert_trainable(model, "all")
    assert all(p.requires_grad for p in bert.parameters())
    set_bert_trainable(model, "none")
    assert not any(p.requires_grad for p in bert.parameters())


def test_poly_schedule():
    assert poly_factor(0, 100) == 1.0
    assert poly_factor(50, 100) == pytest.approx(0.5**0.9)
    assert poly_factor(100, 100) == 0.0


def _sample(segmentation, h=20, w=30) -> ReferringSample:
    return ReferringSample(
        ref_id=1,
        image_id=1,
        height=h,
        width=w,
        split="val",
        segmentation=segmentation,
        sentences=[{"sent": "x"}],
    )


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_gt_mask_drops_polygon_overlaps():
    a = [2.0, 2.0, 12.0, 2.0, 12.0, 12.0, 2.0, 12.0]
    b = [8.0, 8.0, 18.0, 8.0, 18.0, 18.0, 8.0, 18.0]
    got = referring_gt_mask(_sample([a, b]))
    ma = mask_utils.decode(mask_utils.frPyObjects([a], 20, 30))[..., 0].astype(bool)
    mb = mask_utils.decode(mask_utils.frPyObjects([b], 20, 30))[..., 0].astype(bool)
    assert np.array_equal(got, ma ^ mb)  # pixels of both polygons are not object
    assert (ma & mb).sum() > 0
    rle = mask_utils.encode(np.asfortranarray(ma.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    assert np.array_equal(referring_gt_mask(_sample(rle)), ma)


def test_square_resizing_matches_pil():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    got = square_image(image, 16)
    expected = np.asarray(image.resize((16, 16), Image.BILINEAR), dtype=np.float32)
    assert got.shape == (3, 16, 16)
    assert np.array_equal(got.permute(1, 2, 0).numpy(), expected)
    mask = rng.random((30, 50)) > 0.5
    out = square_mask(mask, 16)
    rows = ((np.arange(16) + 0.5) * 30 / 16).astype(int)
    cols = ((np.arange(16) + 0.5) * 50 / 16).astype(int)
    assert np.array_equal(out.numpy(), mask[rows][:, cols].astype(np.int64))
