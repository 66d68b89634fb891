"""LAVT checkpoint conversion: the published key layout, safe reading, errors.

The full-size key tables (../shared/data/lavt/lavt_keys.json, lavt_one_keys.json) were dumped
by building LAVT's own ``lavt`` / ``lavt_one`` (Swin-B window 12 + BERT-base); every key must
land on a parameter of the same shape in ``lavt``, with nothing left over, and the parameter
counts must equal LAVT's. Synthetic checkpoints in LAVT's file layout (with the pickled
``argparse.Namespace``) exercise the reader.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from rem_core.errors import RemError
from rem_models import get_model, get_model_config, parameter_count
from rem_models.checkpoints import save_checkpoint_safetensors
from rem_models.lavt.convert import (
    BERT_PREFIX,
    convert_lavt_state_dict,
    infer_config,
    parameter_breakdown,
    read_lavt_file,
    rem_key,
    window_from_tables,
)
from rem_models.lavt.swin import relative_position_index

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lavt"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _table(name: str) -> dict:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"../shared test data not found: {path}")
    return json.loads(path.read_text())


def _meta_state(shapes: dict[str, list[int]], prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of the table's shapes on the meta device; the index buffers get real values."""
    state = {}
    for key, shape in shapes.items():
        if key.endswith("relative_position_index"):
            state[prefix + key] = relative_position_index(round(shape[0] ** 0.5))
        elif key.endswith("num_batches_tracked"):
            state[prefix + key] = torch.zeros((), dtype=torch.int64)
        else:
            state[prefix + key] = torch.empty(shape, device="meta")
    return state


@pytest.mark.parametrize("layout", ["lavt", "lavt_one"])
def test_full_size_key_table_maps_onto_lavt(layout, capsys):
    table = _table(f"{layout}_keys.json")
    state = _meta_state(table["model"]["state_dict"])
    if layout == "lavt":
        state.update(_meta_state(table["bert"]["state_dict"], BERT_PREFIX))
    assert window_from_tables(state) == 12
    config = get_model_config(layout)
    converted = convert_lavt_state_dict(state, config)
    assert "LAVT parameters: 227,739,514" in capsys.readouterr().err
    with torch.device("meta"):
        model = get_model(layout)
    ours = model.state_dict()
    assert set(converted) == set(ours)  # nothing missing, nothing left over
    for key, tensor in converted.items():
        assert tuple(tensor.shape) == tuple(ours[key].shape), key
    model.load_state_dict(converted, strict=True, assign=True)
    parts = parameter_breakdown(converted)
    # LAVT's own counts (key tables): 98,196,856 + 20,651,010 + 108,891,648.
    assert parts == {"backbone": 98_196_856, "decoder": 20_651_010, "text_encoder": 108_891_648}
    expected_model = table["model"]["num_params"]
    if layout == "lavt":
        assert expected_model + table["bert"]["num_params"] == 227_739_514
        assert expected_model == 118_847_866
    else:
        assert expected_model == 227_739_514
    assert parameter_count(layout) == 227_739_514


def test_config_inferred_from_full_size_table():
    table = _table("lavt_keys.json")
    state = _meta_state(table["model"]["state_dict"])
    state.update(_meta_state(table["bert"]["state_dict"], BERT_PREFIX))
    from rem_models.lavt.convert import LavtFile

    config = infer_config(LavtFile(state, {"mha": "", "img_size": 480}, "lavt"))
    assert config == get_model_config("lavt")


def test_rule_examples():
    assert rem_key("backbone.layers.2.blocks.17.attn.qkv.weight") == (
        "backbone.stages.2.blocks.17.attn.qkv.weight"
    )
    assert rem_key("backbone.layers.0.fusion.image_lang_att.W.0.bias") == (
        "backbone.stages.0.fusion.attention.out.bias"
    )
    assert rem_key("backbone.layers.3.res_gate.2.weight") == "backbone.stages.3.gate.fc2.weight"
    assert rem_key("backbone.norm3.bias") == "backbone.out_norms.3.bias"
    assert rem_key("classifier.bn2_3.running_var") == "decoder.fuse3.bn2.running_var"
    assert rem_key("classifier.conv1_1.weight") == "decoder.predictor.weight"
    assert rem_key("bert_model.encoder.layer.11.output.dense.weight") == (
        "text_encoder.bert.encoder.layer.11.output.dense.weight"
    )
    assert rem_key("text_encoder.embeddings.LayerNorm.bias") == (
        "text_encoder.bert.embeddings.LayerNorm.bias"
    )
    assert rem_key("backbone.layers.0.fusion.image_lang_att.f_other.0.weight") is None
    assert rem_key("backbone.layers.0.res_gate.1.weight") is None


@pytest.mark.parametrize(("rows", "window"), [(169, 7), (529, 12), (49, 4), (9, 2)])
def test_window_from_tables(rows, window):
    state = {"x.attn.relative_position_bias_table": torch.zeros(rows, 2)}
    assert window_from_tables(state) == window


def test_window_from_tables_errors():
    with pytest.raises(RemError, match="not \\(2w - 1\\)\\^2"):
        window_from_tables({"a.attn.relative_position_bias_table": torch.zeros(100, 1)})
    with pytest.raises(RemError, match="different sizes"):
        window_from_tables(
            {
                "a.attn.relative_position_bias_table": torch.zeros(49, 1),
                "b.attn.relative_position_bias_table": torch.zeros(169, 1),
            }
        )
    with pytest.raises(RemError, match="no relative_position_bias_table"):
        window_from_tables({"w": torch.zeros(1)})


@pytest.fixture(scope="module")
def tiny_lavt_state() -> dict[str, torch.Tensor]:
    """A random ``lavt_test`` in LAVT's key names, made by inverting the rules on our model."""
    torch.manual_seed(0)
    model = get_model("lavt_test")
    ours = model.state_dict()
    inverse = {}
    # Enumerate LAVT-style names for the tiny layout and keep those the rules map onto ours.
    for key in _lavt_tiny_names():
        target = rem_key(key)
        if target is not None and target in ours:
            inverse[key] = target
    state = {}
    for lavt_key, target in inverse.items():
        tensor = ours[target].clone()
        if ".fusion." in lavt_key and lavt_key.endswith("weight"):
            tensor = tensor[..., None]  # LAVT's Conv1d(k=1) weights
        state[lavt_key] = tensor
    for i, depth in enumerate([1, 1, 2, 1]):
        for j in range(depth):
            state[f"backbone.layers.{i}.blocks.{j}.attn.relative_position_index"] = (
                relative_position_index(4)
            )
    assert {rem_key(k) for k in state if rem_key(k)} == set(ours)
    return state


def _lavt_tiny_names() -> list[str]:
    names = ["backbone.patch_embed.proj.weight", "backbone.patch_embed.proj.bias"]
    names += ["backbone.patch_embed.norm.weight", "backbone.patch_embed.norm.bias"]
    fusion = [
        "vis_project.0",
        "image_lang_att.f_query.0",
        "image_lang_att.f_key.0",
        "image_lang_att.f_value.0",
        "image_lang_att.W.0",
        "project_mm.0",
    ]
    for i, depth in enumerate([1, 1, 2, 1]):
        for j in range(depth):
            for part in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
                names += [f"backbone.layers.{i}.blocks.{j}.{part}.{p}" for p in ("weight", "bias")]
            names.append(f"backbone.layers.{i}.blocks.{j}.attn.relative_position_bias_table")
        for part in fusion:
            names += [f"backbone.layers.{i}.fusion.{part}.{p}" for p in ("weight", "bias")]
        names += [
            f"backbone.layers.{i}.res_gate.0.weight",
            f"backbone.layers.{i}.res_gate.2.weight",
        ]
        if i < 3:
            names += [f"backbone.layers.{i}.downsample.norm.{p}" for p in ("weight", "bias")]
            names.append(f"backbone.layers.{i}.downsample.reduction.weight")
        names += [f"backbone.norm{i}.{p}" for p in ("weight", "bias")]
    for level in "432":
        for n in "12":
            names.append(f"classifier.conv{n}_{level}.weight")
            names += [
                f"classifier.bn{n}_{level}.{p}"
                for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            ]
    names += ["classifier.conv1_1.weight", "classifier.conv1_1.bias"]
    bert = get_model("lavt_test").text_encoder.bert.state_dict()
    names += [BERT_PREFIX + k for k in bert]
    return names


def _save_lavt(path: Path, state: dict, *, layout: str = "lavt", args=None) -> Path:
    model = {k: v for k, v in state.items() if not k.startswith(BERT_PREFIX)}
    bert = {k.removeprefix(BERT_PREFIX): v for k, v in state.items() if k.startswith(BERT_PREFIX)}
    args = args or argparse.Namespace(model=layout, mha="", img_size=64, fusion_drop=0.0)
    snapshot = {"optimizer": {}, "epoch": 1, "args": args, "lr_scheduler": {}}
    if layout == "lavt":
        snapshot.update(model=model, bert_model=bert)
    else:
        snapshot["model"] = {**model, **{f"text_encoder.{k}": v for k, v in bert.items()}}
    torch.save(snapshot, path)
    return path


@pytest.mark.parametrize("layout", ["lavt", "lavt_one"])
def test_synthetic_checkpoint_round_trip(tiny_lavt_state, tmp_path, layout):
    path = _save_lavt(tmp_path / "ckpt.pth", tiny_lavt_state, layout=layout)
    lavt_file = read_lavt_file(path)
    assert lavt_file.layout == layout
    assert lavt_file.args == {"model": layout, "mha": "", "img_size": 64, "fusion_drop": 0.0}
    config = infer_config(lavt_file)
    assert config == get_model_config("lavt_test")
    converted = convert_lavt_state_dict(lavt_file.state_dict, config, verbose=False)
    model = get_model("lavt_test")
    model.load_state_dict(converted, strict=True)
    reference = get_model("lavt_test")
    reference.load_state_dict(
        {
            rem_key(k): v.squeeze(-1) if ".fusion." in k and k.endswith("weight") else v
            for k, v in tiny_lavt_state.items()
            if rem_key(k)
        },
        strict=True,
    )
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_multi_head_pwam_read_from_args(tiny_lavt_state, tmp_path):
    args = argparse.Namespace(model="lavt", mha="1-2-2-4", img_size=64, fusion_drop=0.1)
    config = infer_config(
        read_lavt_file(_save_lavt(tmp_path / "m.pth", tiny_lavt_state, args=args))
    )
    assert config.swin.fusion_heads == [1, 2, 2, 4] and config.swin.fusion_dropout == 0.1


def test_saved_rem_checkpoint_passes_through(tiny_lavt_state, tmp_path):
    config = get_model_config("lavt_test")
    model = get_model("lavt_test")
    model.load_state_dict(convert_lavt_state_dict(tiny_lavt_state, config, verbose=False))
    path = save_checkpoint_safetensors(
        tmp_path / "m.safetensors", model.state_dict(), config, arch="lavt_test"
    )
    lavt_file = read_lavt_file(path)
    assert lavt_file.layout == "rem"
    again = convert_lavt_state_dict(lavt_file.state_dict, config, verbose=False)
    assert set(again) == set(model.state_dict())


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_only_namespace_is_unpickled(tiny_lavt_state, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": argparse.Namespace(x=_Evil(marker))}, path)
    with pytest.raises(RemError, match="refusing to load global"):
        read_lavt_file(path)
    assert not marker.exists()
    torch.save({"model": {}, "extra": _Evil(marker)}, path)
    with pytest.raises(RemError, match="refusing to load global"):
        read_lavt_file(path)
    assert not marker.exists()


def test_error_messages(tiny_lavt_state):
    config = get_model_config("lavt_test")
    wrong = get_model_config("lavt_test", **{"swin.window_size": 7})
    with pytest.raises(
        RemError,
        match=r"window 4\) but the config has window 7; pass "
        r"--set swin.window_size=4",
    ):
        convert_lavt_state_dict(tiny_lavt_state, wrong, verbose=False)
    no_bert = {k: v for k, v in tiny_lavt_state.items() if not k.startswith(BERT_PREFIX)}
    with pytest.raises(RemError, match="no BERT weights"):
        convert_lavt_state_dict(no_bert, config, verbose=False)
    extra = {**tiny_lavt_state, "backbone.layers.0.mystery.weight": torch.zeros(1)}
    with pytest.raises(
        RemError,
        match="1 checkpoint keys are not LAVT weights: "
        r"backbone\.layers\.0\.mystery\.weight",
    ):
        convert_lavt_state_dict(extra, config, verbose=False)
    both = {**tiny_lavt_state}
    both["text_encoder.embeddings.word_embeddings.weight"] = both[
        BERT_PREFIX + "embeddings.word_embeddings.weight"
    ]
    with pytest.raises(RemError, match="two checkpoint keys map to"):
        convert_lavt_state_dict(both, config, verbose=False)
    bad_index = dict(tiny_lavt_state)
    bad_index["backbone.layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(
        16, 16, dtype=torch.int64
    )
    with pytest.raises(RemError, match="differs from the index of a window-4 table"):
        convert_lavt_state_dict(bad_index, config, verbose=False)


def test_pooler_and_position_ids_are_dropped(tiny_lavt_state):
    state = dict(tiny_lavt_state)
    state[BERT_PREFIX + "embeddings.position_ids"] = torch.arange(512)[None]
    state[BERT_PREFIX + "pooler.dense.weight"] = torch.zeros(768, 768)
    state[BERT_PREFIX + "pooler.dense.bias"] = torch.zeros(768)
    converted = convert_lavt_state_dict(state, get_model_config("lavt_test"), verbose=False)
    get_model("lavt_test").load_state_dict(converted, strict=True)
