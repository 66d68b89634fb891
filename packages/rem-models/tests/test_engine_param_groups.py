"""Layer-wise lr decay and weight-decay groups on a toy ViT-shaped model, against hand values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rem_core.errors import RemError
from rem_models.engine.config import TrainConfig
from rem_models.engine.param_groups import build_optimizer, build_param_groups, vit_layer_id


class ChannelsFirstNorm(nn.Module):
    """Like detectron2's LayerNorm for (N, C, H, W): a plain Module, not a torch norm class."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(4)
        self.qkv = nn.Linear(4, 12)


class ToyViT(nn.Module):
    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 4, 2)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.blocks = nn.ModuleList(Block() for _ in range(depth))


class ToyDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.net = ToyViT()
        self.backbone.fpn_norm = ChannelsFirstNorm(4)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _by_name(groups: list[dict]) -> dict[str, tuple[float, float]]:
    out = {}
    for g in groups:
        for name in g["names"]:
            assert name not in out, f"{name} in two groups"
            out[name] = (g["lr_scale"], g["weight_decay"])
    return out


def test_vit_layer_ids_follow_detectron2_names() -> None:
    assert vit_layer_id("backbone.net.pos_embed", 12) == 0
    assert vit_layer_id("backbone.net.patch_embed.proj.weight", 12) == 0
    assert vit_layer_id("backbone.net.blocks.0.attn.qkv.weight", 12) == 1
    assert vit_layer_id("backbone.net.blocks.11.mlp.fc2.bias", 12) == 12
    assert vit_layer_id("backbone.net.blocks.3.residual.conv1.weight", 12) == 13
    assert vit_layer_id("backbone.simfp_2.0.weight", 12) == 13
    assert vit_layer_id("roi_heads.box_head.fc1.weight", 12) == 13
    # only under "backbone"
    assert vit_layer_id("net.blocks.0.attn.qkv.weight", 12) == 13


def test_layer_decay_and_weight_decay_by_hand() -> None:
    cfg = TrainConfig(
        lr=1.0,
        weight_decay=0.1,
        weight_decay_norm=0.0,
        layer_decay=0.5,
        layer_decay_num_layers=3,
        weight_decay_overrides={"pos_embed": 0.0},
    )
    groups = build_param_groups(ToyDetector(), cfg)
    got = _by_name(groups)
    # L = 3 -> scale = 0.5 ** (4 - id): embeddings 1/16, block i 0.5 ** (3 - i), rest 1.
    expected = {
        "backbone.net.pos_embed": (0.0625, 0.0),  # override removes weight decay
        "backbone.net.patch_embed.weight": (0.0625, 0.1),
        "backbone.net.patch_embed.bias": (0.0625, 0.1),
        "backbone.net.blocks.0.norm1.weight": (0.125, 0.0),  # nn.LayerNorm: norm decay
        "backbone.net.blocks.0.norm1.bias": (0.125, 0.0),
        "backbone.net.blocks.0.qkv.weight": (0.125, 0.1),
        "backbone.net.blocks.0.qkv.bias": (0.125, 0.1),
        "backbone.net.blocks.1.norm1.weight": (0.25, 0.0),
        "backbone.net.blocks.1.norm1.bias": (0.25, 0.0),
        "backbone.net.blocks.1.qkv.weight": (0.25, 0.1),
        "backbone.net.blocks.1.qkv.bias": (0.25, 0.1),
        "backbone.net.blocks.2.norm1.weight": (0.5, 0.0),
        "backbone.net.blocks.2.norm1.bias": (0.5, 0.0),
        "backbone.net.blocks.2.qkv.weight": (0.5, 0.1),
        "backbone.net.blocks.2.qkv.bias": (0.5, 0.1),
        # a channels-first norm that is not a torch norm class keeps weight decay (as in d2)
        "backbone.fpn_norm.weight": (1.0, 0.1),
        "backbone.fpn_norm.bias": (1.0, 0.1),
        "head.weight": (1.0, 0.1),
        "head.bias": (1.0, 0.1),
    }
    assert got == expected  # powers of two are exact; frozen.* absent: not trainable
    for g in groups:
        assert g["lr"] == pytest.approx(1.0 * g["lr_scale"])
        assert len(g["params"]) == len(g["names"])


def test_weight_decay_norm_none_decays_norms_too() -> None:
    """ViTDet-H: no exemptions at all."""
    cfg = TrainConfig(weight_decay=0.1, weight_decay_norm=None)
    got = _by_name(build_param_groups(ToyDetector(), cfg))
    assert {wd for _, wd in got.values()} == {0.1}
    assert {scale for scale, _ in got.values()} == {1.0}


def test_model_hooks_take_precedence() -> None:
    model = ToyDetector()
    model.lr_num_layers = 1
    model.lr_layer_id = lambda name: 0 if name.startswith("backbone") else 2
    got = _by_name(build_param_groups(model, TrainConfig(layer_decay=0.8)))
    assert got["backbone.net.blocks.2.qkv.weight"][0] == pytest.approx(0.64)
    assert got["head.weight"][0] == 1.0


def test_shared_parameter_counted_once() -> None:
    model = ToyDetector()
    model.tied = model.head  # the same Linear under two names
    groups = build_param_groups(model, TrainConfig())
    params = [p for g in groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params})
    assert "tied.weight" not in _by_name(groups)


def test_layer_decay_needs_a_layer_count() -> None:
    with pytest.raises(RemError, match="has no lr_num_layers attribute"):
        build_param_groups(ToyDetector(), TrainConfig(layer_decay=0.7))


def test_optimizer_uses_group_values() -> None:
    cfg = TrainConfig(lr=0.01, layer_decay=0.5, layer_decay_num_layers=3, optimizer="adamw")
    opt = build_optimizer(ToyDetector(), cfg)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = sorted({round(g["lr"], 8) for g in opt.param_groups})
    assert lrs == [0.000625, 0.00125, 0.0025, 0.005, 0.01]
