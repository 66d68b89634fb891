"""SeqTR network: published parameter counts, freezing, contract, greedy decoding."""

from __future__ import annotations

import pytest
import torch

from rem_models.registry import get_model, get_model_config, parameter_count
from rem_models.seqtr.convert import parameter_breakdown

torch.set_num_threads(1)


def _meta(name: str, **over):
    with torch.device("meta"):
        return get_model(name, **over)


def test_published_parameter_counts() -> None:
    # models.md §8: DarkNet 56.3M (5.25M trainable) + GRU 2.5M + fusion 36.6M + head 8.8M = 104.3M
    counts = parameter_breakdown(_meta("seqtr_rec"))
    assert round(counts["vis_enc"] / 1e6, 1) == 56.3
    assert round(counts["vis_enc_trainable"] / 1e6, 2) == 5.25
    assert round(counts["lan_enc_gru"] / 1e6, 1) == 2.5
    assert round(counts["fusion"] / 1e6, 1) == 36.6
    assert round(counts["head"] / 1e6, 1) == 8.8
    assert round(counts["total_without_embedding"] / 1e6, 1) == 104.3
    assert counts["word_embedding"] == get_model_config("seqtr_rec").language.vocab_size * 300
    # the RES head differs only by the query positions: (2*18+1 - 5) * 256
    res = parameter_breakdown(_meta("seqtr_res"))
    assert res["head"] - counts["head"] == 32 * 256
    assert parameter_count("seqtr_res12") - parameter_count("seqtr_rec") == 20 * 256


def test_only_last_two_darknet_modules_train() -> None:
    model = _meta("seqtr_rec")
    trainable = {
        n.split(".")[2]
        for n, p in model.vis_enc.named_parameters(prefix="vis_enc")
        if p.requires_grad
    }
    assert trainable == {"12", "13"}
    assert not model.lan_enc.embedding.weight.requires_grad
    assert model.lan_enc.lstm.weight_hh_l0.requires_grad


def test_checkpoint_key_layout() -> None:
    keys = set(_meta("seqtr_res").state_dict())
    for key in (
        "vis_enc.darknet.0.conv.weight",
        "vis_enc.darknet.0.bn.running_var",
        "vis_enc.darknet.10.module_list.3.1.bn.weight",
        "vis_enc.darknet.11.module_list.1.0.conv.weight",
        "lan_enc.embedding.weight",
        "lan_enc.lstm.weight_ih_l0_reverse",
        "fusion.down_mid2top.1.conv.weight",
        "fusion.down_bot2mid.1.bn.bias",
        "fusion.top_project.1.conv.weight",
        "head.transformer.encoder.layers.5.self_attn.in_proj_weight",
        "head.transformer.decoder.layers.2.multihead_attn.out_proj.weight",
        "head.transformer.decoder.norm.weight",
        "head.transformer.query_embedding.weight",
        "head.transformer.seq_positional_encoding.embedding.weight",
        "head.transformer.input_proj.gn.weight",
        "head.predictor.2.fc.bias",
    ):
        assert key in keys, key
    sd = _meta("seqtr_res").state_dict()
    assert tuple(sd["head.transformer.query_embedding.weight"].shape) == (1001, 256)
    assert tuple(sd["head.transformer.seq_positional_encoding.embedding.weight"].shape) == (37, 256)
    assert tuple(sd["head.predictor.2.fc.weight"].shape) == (1001, 256)


@pytest.mark.parametrize("name", ["seqtr_test_box", "seqtr_test_mask"])
def test_contract_and_greedy_decoding(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name)
    cfg = get_model_config(name)
    images = torch.rand(2, 3, 64, 64) * 255
    ids = torch.tensor([[2, 3, 4, 0, 0, 0, 0, 0], [5, 6, 0, 0, 0, 0, 0, 0]])
    sizes = [(64, 64), (40, 64)]
    if cfg.task == "box":
        targets = {"boxes": torch.tensor([[3.0, 4, 30, 40], [10, 10, 60, 38]])}
    else:
        targets = {
            "points": torch.rand(2, cfg.num_ray, 2) * 40,
            "point_valid": torch.tensor([[True] * cfg.num_ray, [True] * 3 + [False] * 5]),
        }
    model.train()
    loss = model(images, sizes, ids, targets)["loss"]
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.head.predictor[2].fc.weight.grad.abs().sum() > 0
    model.eval()
    out = model(images, sizes, ids)
    assert len(out) == 2
    # greedy decoding by hand: rerun the decoder on the growing prefix, argmax each step
    x, pad_mask, _ = model._features(images, sizes, ids)
    head = model.head
    memory, pos, mask = head.transformer.encode(x, pad_mask)
    inputs = memory.new_zeros((2, 1, head.transformer.d_model))
    steps = 4 if cfg.task == "box" else 2 * cfg.num_ray + 1
    manual = []
    for _ in range(steps):
        logits = head.predictor(head.transformer.decode(inputs, memory, pos, mask)[:, -1])
        if cfg.task == "box":
            logits = logits[:, :-1]
        tok = logits.argmax(-1, keepdim=True)
        manual.append(tok)
        inputs = torch.cat([inputs, head.transformer.query_embedding(tok)], 1)
    manual = torch.cat(manual, 1)
    assert [o["tokens"] for o in out] == manual.tolist()
    if cfg.task == "box":
        assert all(max(o["tokens"]) < cfg.head.num_bins for o in out)
        assert out[1]["box"].shape == (4,)
        # (B, 4) bins * pad / bins: the second image pads 40 -> 64 rows
        assert out[1]["box"][1] == pytest.approx(out[1]["tokens"][1] * 64 / cfg.head.num_bins)
    else:
        assert out[0]["mask"].shape == (64, 64) and out[0]["mask"].dtype == bool


def test_padding_mask_isolates_images() -> None:
    """An image's result does not depend on what the batch holds beyond its valid area."""
    torch.manual_seed(1)
    model = get_model("seqtr_test_box").eval()
    ids = torch.tensor([[2, 3, 0, 0, 0, 0, 0, 0]])
    img = torch.rand(1, 3, 32, 64) * 255
    alone = model(img, [(32, 64)], ids)[0]["tokens"]
    batch = torch.zeros(2, 3, 64, 64)
    batch[0, :, :32] = img[0]
    batch[1] = torch.rand(3, 64, 64) * 255
    both = model(batch, [(32, 64), (64, 64)], ids.repeat(2, 1))[0]["tokens"]
    assert alone == both


def test_partial_res_parameters_and_keys() -> None:
    # task_prompt (256) + 3 decoder layers x point MLP 256-128-64-32
    per_layer = 256 * 128 + 128 + 128 * 64 + 64 + 64 * 32 + 32
    assert parameter_count("pres_res") - parameter_count("seqtr_res12") == 256 + 3 * per_layer
    keys = set(_meta("pres_res").state_dict())
    assert "head.transformer.task_prompt.weight" in keys
    assert {f"head.transformer.decoder.layers.2.point.{i}.weight" for i in (0, 2, 4)} <= keys


def test_co_content_rows_for_x_and_columns_for_y() -> None:
    from rem_models.seqtr.head import co_content

    grid = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)  # (B, h=2, w=3, d=4)
    tokens = torch.tensor([[10, 10, 9, 5]])  # bins of 10: x, y, x, y
    out = co_content(grid, tokens, 10, first=0)
    # x bin 10 -> row floor(1.0 * 1) = 1; y bin 10 -> column floor(1.0 * 2) = 2
    torch.testing.assert_close(out[0, 0], grid[0, 1].mean(0))
    torch.testing.assert_close(out[0, 1], grid[0, :, 2].mean(0))
    # x bin 9 -> row floor(0.9) = 0; y bin 5 -> column floor(0.5 * 2) = 1
    torch.testing.assert_close(out[0, 2], grid[0, 0].mean(0))
    torch.testing.assert_close(out[0, 3], grid[0, :, 1].mean(0))
    # decoding one token at step 1 treats it as a y token
    torch.testing.assert_close(co_content(grid, tokens[:, :1], 10, first=1)[0, 0], out[0, 1])


def test_point_guided_gaussian_by_hand() -> None:
    from rem_models.seqtr.transformer import DecoderLayer

    layer = DecoderLayer(8, 2, 16, 0.0, point_guided=True)
    with torch.no_grad():
        layer.point[4].weight.zero_()
        bias = torch.zeros(8)
        bias[4:] = 1.0  # centres: sigmoid(0) = 0.5; scales: 1
        layer.point[4].bias.copy_(bias)
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    g = layer.gaussian_bias(torch.zeros(1, 1, 8), mask)
    assert g.shape == (1, 2, 1, 4)
    # centre (1, 1) vs cell centres (0.5 | 1.5, 0.5 | 1.5): 0.25 + 0.25 each
    torch.testing.assert_close(g, torch.full((1, 2, 1, 4), -0.5 / 8))
    mask[:, :, 1] = True  # right column padded: valid width ratio 0.5 -> centre x 0.5
    g = layer.gaussian_bias(torch.zeros(1, 1, 8), mask)
    expected = -torch.tensor([0 + 0.25, 1 + 0.25, 0 + 0.25, 1 + 0.25]) / 8
    torch.testing.assert_close(g[0, 0, 0], expected)


def test_partial_res_forward_uses_its_parts() -> None:
    torch.manual_seed(0)
    model = get_model("pres_test_mask")
    head = model.head
    images = torch.rand(2, 3, 64, 64) * 255
    ids = torch.tensor([[2, 3, 4, 0, 0, 0, 0, 0], [5, 6, 0, 0, 0, 0, 0, 0]])
    sizes = [(64, 64), (40, 64)]
    x, pad_mask, language = model._features(images, sizes, ids)
    memory, pos, mask, grid = head._encode(x, pad_mask, language)
    hw = x.shape[2] * x.shape[3]
    assert memory.shape[1] == hw + 1 and not mask[:, -1].any()
    assert torch.equal(pos[:, -1], torch.zeros_like(pos[:, -1]))
    assert grid.shape[1:3] == x.shape[2:]
    assert torch.equal(head._start(memory)[0, 0], head.transformer.task_prompt.weight[0])
    targets = {
        "points": torch.rand(2, 8, 2) * 40,
        "point_valid": torch.tensor([[True] * 8, [True] * 3 + [False] * 5]),
    }
    model.train()
    model(images, sizes, ids, targets)["loss"].backward()
    assert head.transformer.task_prompt.weight.grad.abs().sum() > 0
    assert head.transformer.decoder.layers[0].point[0].weight.grad.abs().sum() > 0
    model.eval()
    out = model(images, sizes, ids)
    assert len(out[0]["tokens"]) == 17


def test_darknet_binary_weights(tmp_path) -> None:
    import numpy as np

    from rem_core.errors import RemError
    from rem_models.seqtr.darknet import DarkNet53, conv_layers, load_darknet_weights

    net = DarkNet53(stem=2, blocks=(1, 1, 1, 1, 1), extra_blocks=1)
    convs = conv_layers(net)
    # the first 3 convs, as darknet53.conv.74 stores a prefix of the network
    rng = np.random.default_rng(0)
    chunks, expected = [], []
    for layer in convs[:3]:
        c, k = layer.bn.num_features, layer.conv.weight.numel()
        parts = [rng.standard_normal(n).astype("<f4") for n in (c, c, c, c, k)]
        chunks += parts
        expected.append(parts)
    header = np.array([0, 2, 0, 0, 0], dtype="<i4").tobytes()
    f = tmp_path / "darknet.weights"
    f.write_bytes(header + np.concatenate(chunks).tobytes())
    assert load_darknet_weights(net, f) == 3
    for layer, (b, w, mean, var, kernel) in zip(convs[:3], expected, strict=True):
        np.testing.assert_array_equal(layer.bn.bias.numpy(), b)
        np.testing.assert_array_equal(layer.bn.weight.numpy(), w)
        np.testing.assert_array_equal(layer.bn.running_mean.numpy(), mean)
        np.testing.assert_array_equal(layer.bn.running_var.numpy(), var)
        np.testing.assert_array_equal(layer.conv.weight.numpy().ravel(), kernel)
    f.write_bytes(header + np.concatenate(chunks)[:-5].tobytes())
    with pytest.raises(RemError, match="ends inside conv 2"):
        load_darknet_weights(net, f)


def test_darknet_file_with_detector_heads_loads_the_backbone(tmp_path) -> None:
    import numpy as np

    from rem_models.seqtr.darknet import DarkNet53, conv_layers, load_darknet_weights

    net = DarkNet53(stem=2, blocks=(1, 1, 1, 1, 1), extra_blocks=1)
    total = sum(4 * c.bn.num_features + c.conv.weight.numel() for c in conv_layers(net))
    values = np.arange(total + 50, dtype="<f4")  # 50 values of YOLO heads after the backbone
    f = tmp_path / "yolov3.weights"
    f.write_bytes(np.zeros(5, "<i4").tobytes() + values.tobytes())
    assert load_darknet_weights(net, f) == len(conv_layers(net)) == 20
    assert float(conv_layers(net)[-1].conv.weight.flatten()[-1]) == total - 1
