"""detectron2 / MAE -> rem ViTDet weight conversion: every key mapped, none left over.

The official B/L/H key tables (../shared/data/vitdet/vitdet_{b,l,h}_keys.json) were read
from detectron2 models built with the released configs; shapes are compared with our models
built on the meta device, and the parameter counts with the published totals.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rem_core.errors import RemError
from rem_models import get_model, get_model_config, get_weights, parameter_count
from rem_models.checkpoints import load_state_dict_file
from rem_models.vitdet.convert import (
    convert_detectron2_state_dict,
    convert_mae_state_dict,
    convert_state_dict,
    detectron2_key_map,
    load_checkpoint_file,
    load_into,
)

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vitdet"

PUBLISHED = {"b": 110_895_792, "l": 330_684_656, "h": 661_203_760}


def shared_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"../shared test data not found: {path}")
    return path


def meta_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("size", ["b", "l", "h"])
def test_official_key_tables_convert_completely(size):
    table = json.loads(shared_file(f"vitdet_{size}_keys.json").read_text())
    shapes = table["state_dict_shapes"]
    assert table["total_params"] == PUBLISHED[size]
    config = get_model_config(f"vitdet_{size}")
    # Hyperparameters read back from detectron2's instantiated backbone.
    net = table["backbone_net"]
    assert (config.vit.embed_dim, config.vit.depth, config.vit.num_heads) == (
        net["embed_dim"],
        net["depth"],
        net["num_heads"],
    )
    assert config.vit.window_block_indexes == net["window_block_indexes"]
    assert config.vit.drop_path_rate == net["drop_path_rate"]
    assert config.pyramid.square_pad == table["sfp"]["square_pad"]

    mapping = detectron2_key_map(list(shapes), config)
    assert len(set(mapping.values())) == len(shapes)  # one rem key per detectron2 key
    converted = convert_detectron2_state_dict(meta_state(shapes), config)
    with torch.device("meta"):
        model = get_model(f"vitdet_{size}")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(converted) == set(ours)
    for key, value in converted.items():
        assert list(value.shape) == ours[key], key
    total = sum(p.numel() for p in model.parameters())
    assert total == sum(int(np.prod(s)) for s in shapes.values()) == PUBLISHED[size]
    assert parameter_count(f"vitdet_{size}") == PUBLISHED[size]
    assert (
        get_weights(f"vitdet_{size}", "coco-75ep" if size == "h" else "coco-100ep").num_params
        == PUBLISHED[size]
    )
    # The module breakdown detectron2 reports.
    by_module = table["params_by_module"]

    def count(prefix: str) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    assert count("backbone.vit.") == by_module["backbone.net"]
    assert count("backbone.levels.") == by_module["backbone.simfp+top"]
    assert count("rpn.") == by_module["proposal_generator"]
    assert count("roi_heads.") == by_module["roi_heads"]


def tiny_state() -> dict[str, torch.Tensor]:
    return torch.load(shared_file("tiny_oracle.pt"), weights_only=True)["state_dict"]


def test_unknown_missing_and_misshaped_keys_are_refused():
    config = get_model_config("vitdet_test")
    state = tiny_state()
    with pytest.raises(
        RemError, match=r"1 detectron2 key\(s\) have no counterpart.*roi_heads\.extra\.weight"
    ):
        convert_detectron2_state_dict({**state, "roi_heads.extra.weight": torch.zeros(1)}, config)
    partial = {k: v for k, v in state.items() if k != "roi_heads.mask_head.predictor.bias"}
    with pytest.raises(
        RemError, match=r"missing for 1 parameter.*roi_heads\.mask_head\.predictor\.bias"
    ):
        convert_detectron2_state_dict(partial, config)
    bad = {**state, "backbone.net.blocks.1.attn.rel_pos_h": torch.zeros(27, 16)}
    with pytest.raises(
        RemError, match=r"shape mismatch.*blocks\.1\.attn\.rel_pos_h \(27, 16\) vs \(15, 16\)"
    ):
        convert_detectron2_state_dict(bad, config)
    # A state dict for 80 classes does not load into a 5-class config.
    with pytest.raises(RemError, match="shape mismatch"):
        convert_detectron2_state_dict(state, get_model_config("vitdet_test", num_classes=80))


def test_detectron2_pickle_loads_through_the_restricted_unpickler(tmp_path):
    """A model_final_*.pkl-style file (numpy arrays, latin1 pickle) end to end."""
    state = tiny_state()
    path = tmp_path / "model_final_tiny.pkl"
    payload = {
        "model": {k: v.numpy() for k, v in state.items()},
        "__author__": "Detectron2 Model Zoo",
    }
    path.write_bytes(pickle.dumps(payload, protocol=2))
    raw = load_state_dict_file(path)
    assert list(raw) == list(state)
    config = get_model_config("vitdet_test")
    weights = load_checkpoint_file(path, config)
    assert weights.kind == "detectron2" and weights.complete
    model = get_model("vitdet_test")
    load_into(model, weights)
    assert torch.equal(
        model.roi_heads.box_predictor.cls_score.weight,
        state["roi_heads.box_predictor.cls_score.weight"],
    )
    assert torch.equal(
        model.backbone.levels["p2"].lateral.norm.bias, state["backbone.simfp_2.4.norm.bias"]
    )
    assert torch.equal(
        model.backbone.levels["p5"].output.conv.weight, state["backbone.simfp_5.2.weight"]
    )
    assert torch.equal(
        model.rpn.head.convs[1].weight, state["proposal_generator.rpn_head.conv.conv1.weight"]
    )
    assert torch.equal(
        model.roi_heads.mask_head.convs[3].norm.weight,
        state["roi_heads.mask_head.mask_fcn4.norm.weight"],
    )
    # Conversion errors name the file.
    path.write_bytes(pickle.dumps({"model": {"head.weight": np.zeros(2, np.float32)}}, protocol=2))
    with pytest.raises(RemError, match=r"model_final_tiny\.pkl: not a ViTDet checkpoint"):
        load_checkpoint_file(path, config)


def mae_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tiny backbone in MAE's encoder layout, with the entries ViTDet does not use."""
    mae = {
        "cls_token": torch.zeros(1, 1, 64),
        "norm.weight": torch.ones(64),
        "norm.bias": torch.zeros(64),
    }
    for key, value in state.items():
        if key.startswith("backbone.net.") and ".rel_pos_" not in key:
            mae[key.removeprefix("backbone.net.")] = value
    return mae


def test_mae_backbone_weights(tmp_path):
    state = tiny_state()
    config = get_model_config("vitdet_test")
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": mae_checkpoint(state)}, path)
    weights = load_checkpoint_file(path, config)
    assert weights.kind == "mae" and not weights.complete
    assert sorted(weights.ignored) == ["cls_token", "norm.bias", "norm.weight"]
    model = get_model("vitdet_test")
    heads_before = model.roi_heads.box_predictor.cls_score.weight.clone()
    load_into(model, weights)
    vit = model.backbone.vit
    assert torch.equal(vit.pos_embed, state["backbone.net.pos_embed"])
    assert torch.equal(vit.patch_embed.weight, state["backbone.net.patch_embed.proj.weight"])
    assert torch.equal(vit.blocks[3].mlp.fc2.bias, state["backbone.net.blocks.3.mlp.fc2.bias"])
    assert not vit.blocks[0].attn.rel_pos_h.any()  # not in MAE: stays zero, as in detectron2
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, heads_before)
    # A ViT weight missing from the file is an error, not a silent random init.
    mae = mae_checkpoint(state)
    del mae["blocks.2.attn.qkv.bias"]
    with pytest.raises(
        RemError, match=r"missing for 1 parameter.*backbone\.vit\.blocks\.2\.attn\.qkv\.bias"
    ):
        convert_mae_state_dict(mae, config)
    # MAE ViT-H/14 unconverted: patch 14 and a 16x16 grid (257 positions).
    mae = mae_checkpoint(state)
    mae["pos_embed"] = torch.zeros(1, 257, 64)
    with pytest.raises(
        RemError, match=r"shape mismatch.*pos_embed \(1, 257, 64\) vs \(1, 197, 64\)"
    ):
        convert_mae_state_dict(mae, config)


def test_rem_state_dicts_pass_through_checked():
    model = get_model("vitdet_test")
    weights = convert_state_dict(model.state_dict(), get_model_config("vitdet_test"))
    assert weights.kind == "rem" and set(weights.state_dict) == set(model.state_dict())
    with pytest.raises(RemError, match="not a ViTDet checkpoint"):
        convert_state_dict({"fc.weight": torch.zeros(1)}, get_model_config("vitdet_test"))


def test_layer_decay_ids_match_detectron2_names():
    """Layer-wise lr decay keys on names; ours must give every tensor detectron2's layer id."""
    from rem_models.engine.param_groups import vit_layer_id

    table = json.loads(shared_file("vitdet_b_keys.json").read_text())
    mapping = detectron2_key_map(list(table["state_dict_shapes"]), get_model_config("vitdet_b"))
    for d2_name, rem_name in mapping.items():
        assert vit_layer_id(rem_name, 12) == vit_layer_id(d2_name, 12), (d2_name, rem_name)
    with torch.device("meta"):
        assert get_model("vitdet_b").lr_num_layers == 12
