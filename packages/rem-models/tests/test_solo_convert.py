"""Converting released-layout checkpoints (synthetic tensors, published key layouts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import solo_key_tables as tables
import torch
import torchvision
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_models import get_model, get_model_config
from rem_models.checkpoints import build_from_checkpoint, load_state_dict_file
from rem_models.solo.build import build_solo
from rem_models.solo.convert import convert_checkpoint

torch.set_num_threads(1)

TINY = ["solo_test", "solov2_test", "aggmask_test", "aggmask_star_test"]

_COCO_CLASSES = ("person", "bicycle", "car")  # what mmcv stores under meta["CLASSES"]


def synthetic_state(table: tables.Table, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in table.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g)
    return out


def save_mmcv(path: Path, state: dict[str, torch.Tensor], **meta: object) -> Path:
    """An mmcv-0.2 style checkpoint: meta (config text, classes, epoch), weights, optimizer."""
    torch.save(
        {
            "meta": {
                "mmdet_version": "1.0.0+unknown",
                "config": "model = dict(type='SOLOv2', ...)",
                "CLASSES": _COCO_CLASSES,
                "epoch": 36,
                "iter": 263844,
                **meta,
            },
            "state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0001, "momentum": 0.9}]},
        },
        path,
    )
    return path


@pytest.mark.parametrize("name", TINY)
def test_every_key_of_the_layout_converts_and_loads_strictly(name, tmp_path):
    state = synthetic_state(tables.tiny_table(name))
    path = save_mmcv(tmp_path / f"{name}.pth", state)
    loaded = load_state_dict_file(path, "mmcv")
    config = get_model_config(name)
    converted = convert_checkpoint(loaded, config, quiet=True)
    model = build_solo(config)
    model.load_state_dict(converted, strict=True)
    own = model.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], state[k]) for k in state)


def _dcn_tiny(kind: str):
    """The tiny SOLOv2 with bottleneck stages 2-4 and the towers deformable."""
    config = get_model_config(
        "solov2_test",
        backbone={"depth": 50, "dcn": kind, "stage_with_dcn": [False, True, True, True]},
        head={"tower_dcn": kind},
    )
    table = {
        **tables.resnet(50, dcn=kind, **tables.TINY_BACKBONE),  # type: ignore[arg-type]
        **tables.fpn([64, 128, 256, 512], 32),
        **tables.solov2_head(3, 32, 2, 32, 32, dcn=kind),
        **tables.mask_feat_head(32, 16, 32),
    }
    return config, table


def test_modulated_offsets_saved_by_newer_mmcv_are_renamed():
    config, table = _dcn_tiny("dcnv2")
    state = synthetic_state(table)
    newer = {k.replace(".conv_offset_mask.", ".conv_offset."): v for k, v in state.items()}
    assert newer.keys() != state.keys()
    converted = convert_checkpoint(newer, config, quiet=True)
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_pre_1_0_block_level_dcn_offsets_are_renamed():
    config, table = _dcn_tiny("dcn")
    state = synthetic_state(table)
    old = {k.replace(".conv2.conv_offset.", ".conv2_offset."): v for k, v in state.items()}
    assert any(".conv2_offset." in k for k in old)
    converted = convert_checkpoint(old, config, quiet=True)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_old_files_without_bn_counters_and_with_module_prefix(tmp_path):
    state = synthetic_state(tables.tiny_table("solo_test"))
    stripped = {f"module.{k}": v for k, v in state.items() if "num_batches_tracked" not in k}
    path = save_mmcv(tmp_path / "old.pth", stripped)
    converted = convert_checkpoint(
        load_state_dict_file(path, "mmcv"), get_model_config("solo_test"), quiet=True
    )
    assert int(converted["backbone.bn1.num_batches_tracked"]) == 0
    assert torch.equal(converted["bbox_head.solo_cate.weight"], state["bbox_head.solo_cate.weight"])


def test_errors_name_the_keys():
    config = get_model_config("solo_test")
    state = synthetic_state(tables.tiny_table("solo_test"))
    with pytest.raises(
        RemError, match=r"no place in the model, e\.g\. \['bbox_head\.extra\.weight'\]"
    ):
        convert_checkpoint({**state, "bbox_head.extra.weight": torch.zeros(1)}, config, quiet=True)
    partial = {k: v for k, v in state.items() if not k.startswith("bbox_head.solo_ins_list.4")}
    with pytest.raises(
        RemError, match=r"missing from the file, e\.g\. \['bbox_head\.solo_ins_list\.4"
    ):
        convert_checkpoint(partial, config, quiet=True)
    wider = dict(state)
    wider["bbox_head.solo_cate.weight"] = torch.zeros(4, 32, 3, 3)
    with pytest.raises(RemError, match="the file has 4 classes; set num_classes"):
        convert_checkpoint(wider, config, quiet=True)
    # A SOLO file is not an AggMask file.
    with pytest.raises(RemError, match=r"no place|missing"):
        convert_checkpoint(state, get_model_config("aggmask_test"), quiet=True)


def test_unsafe_objects_in_a_checkpoint_are_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    save_mmcv(path, synthetic_state(tables.tiny_table("solo_test")), args=argparse.Namespace(a=1))
    with pytest.raises(RemError, match=r"refusing to load global argparse\.Namespace"):
        load_state_dict_file(path, "mmcv")


def test_imagenet_classifier_starts_a_fresh_model():
    config = get_model_config(
        "solo_test", backbone={"blocks": None, "stem_channels": 64, "planes": [64, 128, 256, 512]}
    )
    classifier = torchvision.models.resnet18().state_dict()
    converted = convert_checkpoint(classifier, config, quiet=True)
    model = build_solo(config)
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.backbone.layer3[1].conv2.weight, classifier["layer3.1.conv2.weight"])
    torch.manual_seed(0)
    fresh = build_solo(config)
    assert torch.equal(model.bbox_head.solo_cate.weight, fresh.bbox_head.solo_cate.weight)
    with pytest.raises(RemError, match=r"lack backbone tensor 'layer4\.1\.bn2\.weight'"):
        del classifier["layer4.1.bn2.weight"]
        convert_checkpoint(classifier, config, quiet=True)


def test_rem_convert_checkpoint_end_to_end(tmp_path):
    state = synthetic_state(tables.tiny_table("aggmask_test"), seed=3)
    source = save_mmcv(tmp_path / "aggmask_test.pth", state)
    dest = tmp_path / "converted.safetensors"
    result = CliRunner().invoke(
        cli, ["convert-checkpoint", "aggmask_test", str(source), str(dest)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{sum(v.numel() for k, v in state.items() if 'running' not in k and 'num_b' not in k):,} parameters"
        in result.output
    )
    model = build_from_checkpoint(dest)
    assert type(model) is type(get_model("aggmask_test"))
    own = model.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)
    bad = CliRunner().invoke(cli, ["convert-checkpoint", "solo_test", str(source), str(dest)])
    assert bad.exit_code == 2
    assert "no place in the model" in bad.output
