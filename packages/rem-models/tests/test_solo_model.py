"""The SOLO-family model contract, layouts and sizes of every registered variant."""

from __future__ import annotations

import pytest
import solo_key_tables as tables
import torch
import torchvision

from rem_models import get_model, get_model_config, get_model_entry, list_models, parameter_count
from rem_models.engine.config import TrainConfig
from rem_models.overrides import override_config
from rem_models.solo import postprocess
from rem_models.solo.config import InferenceConfig
from rem_models.solo.convert import parameter_summary
from rem_models.solo.postprocess import Candidates, select_instances

torch.set_num_threads(1)

TINY = ["solo_test", "solov2_test", "aggmask_test", "aggmask_star_test"]
FULL = [n for n in list_models("solo*") + list_models("aggmask*") if not n.endswith("_test")]


def _targets(h: int, w: int, boxes: list[tuple[int, int, int, int]], labels: list[int]) -> dict:
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        masks[i, y0:y1, x0:x1] = 1
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        "masks": masks,
    }


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 96, 128, generator=g) * 255, torch.rand(3, 80, 72, generator=g) * 255]


# ---------------------------------------------------------------------------------------------
# sizes and key layouts


def test_every_variant_of_the_reference_tables_is_registered():
    expected = {
        "solo_r50_1x",
        "solo_r50_3x",
        "solo_r101_3x",
        "solov2_r50_1x",
        "solov2_r50_3x",
        "solov2_r101_3x",
        "solov2_r101_dcn_3x",
        "solov2_x101_dcn_3x",
        "solov2_light_448_r18_3x",
        "solov2_light_448_r34_3x",
        "solov2_light_448_r50_3x",
        "solov2_light_512_dcn_r50_3x",
        "aggmask_r50",
        "aggmask_r101",
        "aggmask_r101_cls_grid",
        "aggmask_r101_half_mask_grid",
        "aggmask_star_r50",
        "aggmask_star_r101",
        "aggmask_star_r101_cls_grid",
        "aggmask_star_r101_half_mask_grid",
        "aggmask_star_r101_cls_grid_60",
    }
    assert set(FULL) == expected
    assert set(TINY) <= set(list_models())


@pytest.mark.parametrize(
    ("name", "millions"),
    [
        ("solo_r50_3x", 36.3),
        ("solov2_r50_3x", 46.6),
        ("solov2_r101_3x", 65.6),
        ("aggmask_r50", 38.8),
        ("aggmask_star_r50", 39.0),
    ],
)
def test_parameter_counts_match_the_spec(name, millions):
    assert round(parameter_count(name) / 1e6, 1) == millions


def test_head_sizes_match_the_spec():
    with torch.device("meta"):
        solo = get_model("solo_r50_3x")
        v2 = get_model("solov2_r50_3x")
        agg = get_model("aggmask_r50")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert round(count(solo.bbox_head) / 1e6, 1) == 9.4
    assert round(count(v2.bbox_head) / 1e6, 1) == 18.1  # the mask-feature head is apart
    assert count(v2.mask_feat_head) == 1_659_392
    assert round((count(agg) - count(solo)) / 1e6, 2) == 2.51  # SOLO + aggregator parts
    assert round(count(agg.bbox_head.learned_weights) / 1e6, 2) == 2.18
    summary = parameter_summary(solo)
    assert summary.startswith("36,301,232 parameters") and "bbox_head 9,448,816" in summary


@pytest.mark.parametrize("name", FULL)
def test_state_dict_layout_is_the_released_one(name):
    with torch.device("meta"):
        model = get_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = tables.official_table(name)
    assert sorted(set(want) - set(ours)) == []
    assert sorted(set(ours) - set(want)) == []
    assert {k: v for k, v in ours.items() if want[k] != v} == {}
    assert tables.parameters(want) == sum(p.numel() for p in model.parameters())


def test_training_recipes():
    solo, v2 = get_model_entry("solo_r50_3x"), get_model_entry("solov2_r50_1x")
    star = get_model_entry("aggmask_star_r50")
    cfg = override_config(TrainConfig(), dict(solo.train_defaults))
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.01, 0.9, 1e-4)
    assert cfg.weight_decay_norm is None  # mmdet decays every parameter
    assert (cfg.batch_size, cfg.clip_grad_norm, cfg.warmup_steps) == (16, 35.0, 500)
    assert cfg.warmup_factor == pytest.approx(1 / 3)
    # 36 epochs of 7,330 steps (117,266 images / 16), x0.1 after epochs 27 and 33.
    assert (cfg.steps, cfg.milestones) == (263_880, [197_910, 241_890])
    assert (cfg.augment.kind, cfg.augment.flip) == ("none", True)
    cfg = override_config(TrainConfig(), dict(v2.train_defaults))
    assert (cfg.steps, cfg.milestones, cfg.warmup_factor) == (87_960, [65_970, 80_630], 0.01)
    cfg = override_config(TrainConfig(), dict(star.train_defaults))
    assert (cfg.steps, cfg.milestones) == (72 * 7330, [54 * 7330, 66 * 7330])
    assert get_model_config("solo_r50_1x").input.train_scales == [(1333, 800)]
    assert [s for _, s in get_model_config("solo_r50_3x").input.train_scales] == list(
        range(800, 639, -32)
    )
    light = get_model_config("solov2_light_448_r50_3x").input
    assert light.test_scale == (768, 448) and light.train_scales[-1] == (768, 352)
    for name in FULL + TINY:
        override_config(TrainConfig(), dict(get_model_entry(name).train_defaults))


@pytest.mark.parametrize(
    ("depth", "kw", "builder"),
    [
        (50, {}, torchvision.models.resnet50),
        (101, {"groups": 64, "width_per_group": 4}, torchvision.models.resnext101_64x4d),
        (18, {}, torchvision.models.resnet18),
    ],
)
def test_key_table_generator_agrees_with_torchvision(depth, kw, builder):
    # The hand-written ResNet rules of solo_key_tables, checked on torchvision itself.
    with torch.device("meta"):
        ref = {k: tuple(v.shape) for k, v in builder().state_dict().items() if "fc." not in k}
    assert tables.resnet(depth, prefix="", **kw) == ref


# ---------------------------------------------------------------------------------------------
# the contract on tiny variants


@pytest.mark.parametrize("name", TINY)
def test_losses_reach_every_parameter(name):
    torch.manual_seed(0)
    model = get_model(name)
    model.train()
    targets = [
        _targets(96, 128, [(10, 8, 40, 40), (60, 30, 100, 70), (5, 60, 20, 90)], [0, 2, 1]),
        _targets(80, 72, [], []),
    ]
    losses = model(_images(), targets)
    assert set(losses) == {"loss_ins", "loss_cate"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert float(losses["loss_ins"].detach()) > 0.5  # Dice of untrained masks
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", TINY)
def test_batches_without_any_instance_train(name):
    # The reference crashes here (torch.cat of no positive masks).
    model = get_model(name)
    model.train()
    losses = model(_images(), [_targets(96, 128, [], []), _targets(80, 72, [], [])])
    assert float(losses["loss_ins"].detach()) == 0.0
    assert 0 < float(losses["loss_cate"].detach()) < 0.1  # all-background focal loss, / (0 + 1)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def _force_positive_masks(model) -> None:
    """Make every cell's mask positive everywhere so candidates pass the area filter."""
    head = model.bbox_head
    if hasattr(head, "learned_weights"):  # aggregator: weights 0 except the output bias
        head.learned_weights.weight.zero_()
        head.learned_weights.bias.zero_()
        head.learned_weights.bias[-1] = 3.0
    elif hasattr(head, "solo_kernel"):  # SOLOv2: positive feature, positive kernels
        head.solo_kernel.bias.fill_(1.0)
        model.mask_feat_head.conv_pred[0].gn.bias.fill_(1.0)
    else:
        for conv in head.solo_ins_list:
            conv.bias.fill_(3.0)


@pytest.mark.parametrize("name", TINY)
def test_inference_outputs(name):
    torch.manual_seed(0)
    model = get_model(name, test=InferenceConfig(score_thr=0.0, update_thr=0.0, max_per_img=7))
    model.eval()
    _force_positive_masks(model)
    outputs = model(_images())
    assert len(outputs) == 2
    for out, (h, w) in zip(outputs, [(96, 128), (80, 72)]):
        d = out["scores"].shape[0]
        assert 0 < d <= 7
        assert out["masks"].shape == (d, h, w) and out["masks"].dtype == torch.bool
        assert out["boxes"].shape == (d, 4) and out["boxes"].dtype == torch.float32
        assert out["labels"].dtype == torch.int64 and int(out["labels"].max()) < 3
        assert torch.all(out["scores"][:-1] >= out["scores"][1:])
    resized = model(_images(), output_sizes=[(48, 64), (160, 144)])
    assert resized[0]["masks"].shape[1:] == (48, 64)
    assert resized[1]["masks"].shape[1:] == (160, 144)
    again = model(_images())
    assert all(torch.equal(a["masks"], b["masks"]) for a, b in zip(outputs, again))


def test_test_scale_resizes_inside_and_reports_in_input_pixels(monkeypatch):
    model = get_model("solov2_test", input={"test_scale": (64, 48)})
    model.eval()
    seen = []
    original = model.features

    def spy(batch):
        seen.append(tuple(batch.shape[-2:]))
        return original(batch)

    monkeypatch.setattr(model, "features", spy)
    out = model([torch.rand(3, 96, 128) * 255])
    # 96 x 128 -> factor min(64 / 128, 48 / 96) = 0.5 -> 48 x 64, padded to 64 x 64.
    assert seen == [(64, 64)]
    assert out[0]["masks"].shape[1:] == (96, 128)


def test_multi_scale_training_draws_a_scale_per_image(monkeypatch):
    model = get_model("solo_test", input={"train_scales": [(64, 48), (256, 192)]})
    model.train()
    seen = []
    original = model.features

    def spy(batch):
        seen.append(tuple(batch.shape[-2:]))
        return original(batch)

    monkeypatch.setattr(model, "features", spy)
    torch.manual_seed(3)
    for _ in range(6):
        model([torch.rand(3, 96, 128) * 255], [_targets(96, 128, [(8, 8, 40, 40)], [1])])
    # 96 x 128 at (64, 48) is 48 x 64 (padded 64 x 64); at (256, 192) it is 192 x 256.
    assert set(seen) == {(64, 64), (192, 256)}


def test_contract_errors():
    model = get_model("solo_test")
    model.train()
    image = torch.rand(3, 32, 32)
    with pytest.raises(ValueError, match="one target dict per image"):
        model([image])
    with pytest.raises(ValueError, match=r"must be \(3, H, W\)"):
        model([torch.rand(1, 32, 32)], [_targets(32, 32, [], [])])
    with pytest.raises(ValueError, match="labels outside"):
        model([image], [_targets(32, 32, [(0, 0, 8, 8)], [3])])
    with pytest.raises(ValueError, match="do not fit"):
        model([image], [_targets(16, 16, [(0, 0, 8, 8)], [0])])
    model.eval()
    with pytest.raises(ValueError, match="output_sizes"):
        model([image], output_sizes=[(1, 1), (2, 2)])


@pytest.mark.parametrize("keep_limit", [0, 1 << 28])
def test_select_instances_by_hand(keep_limit, monkeypatch):
    monkeypatch.setattr(postprocess, "_KEEP_LIMIT", keep_limit)  # recompute / keep the masks
    # Three candidates over 8x8 stride-4 masks (input 32x32): 0 and 1 are the same mask of
    # class 0 (1 is suppressed), 2 is a 2-pixel mask on a stride-8 level (dropped: 2 <= 8).
    masks = torch.zeros(3, 8, 8)
    masks[0, 0:4, 0:4] = 0.8
    masks[1, 0:4, 0:4] = 0.6
    masks[2, 6, 6:8] = 0.9
    cands = Candidates(
        scores=torch.tensor([0.5, 0.9, 0.7]),
        labels=torch.tensor([0, 0, 1]),
        cells=torch.tensor([10, 3, 7]),
        strides=torch.tensor([8.0, 8.0, 8.0]),
    )
    by_cell = {10: masks[0], 3: masks[1], 7: masks[2]}

    def mask_fn(cells):
        return torch.stack([by_cell[int(c)] for c in cells]) if len(cells) else masks[:0]

    probs, scores, labels = select_instances(cands, mask_fn, InferenceConfig(update_thr=0.05))
    # Maskness: 0.5 * 0.8 = 0.4 and 0.9 * 0.6 = 0.54: cell 3 ranks first; the other copy
    # (IoU 1) decays by exp(-2).
    assert labels.tolist() == [0, 0]
    assert scores.tolist() == pytest.approx([0.54, 0.4 * float(torch.exp(torch.tensor(-2.0)))])
    assert torch.equal(probs[0], masks[1])
    # update_thr above the decayed score removes it; max_per_img caps the count.
    _, scores, _ = select_instances(cands, mask_fn, InferenceConfig(update_thr=0.1))
    assert scores.tolist() == pytest.approx([0.54])


def test_config_round_trip_and_overrides():
    cfg = get_model_config("aggmask_r101_half_mask_grid")
    assert cfg.head.mask_grids == [20, 18, 12, 8, 6]
    assert cfg.input.train_scales[0] == (1333, 800) and cfg.input.train_scales[-1] == (1333, 640)
    assert get_model_config("aggmask_star_r50").test.max_per_img == 300
    assert get_model_config("aggmask_r101_cls_grid").test.max_per_img == 300
    assert get_model_config("aggmask_r50").test.max_per_img == 100
    with pytest.raises(Exception, match="5 entries"):
        get_model_config("solo_r50_3x", head={"num_grids": [40, 36]})
