"""torch and safetensors loading, state-dict unwrapping, and rem's safetensors checkpoints."""

from __future__ import annotations

import argparse
import collections
import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from rem_core.errors import RemError
from rem_models import get_model, get_model_config, parameter_count
from rem_models.checkpoints import (
    ARCH_KEY,
    CONFIG_KEY,
    build_from_checkpoint,
    guess_format,
    load_checkpoint_safetensors,
    load_state_dict_file,
    load_torch_file,
    save_checkpoint_safetensors,
    unwrap_state_dict,
)


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "fc.weight": torch.randn(3, 4),
        "fc.bias": torch.randn(3).half(),
        "bn.num_batches_tracked": torch.tensor(5),
        "empty": torch.zeros(0, 2),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


# --- torch files ------------------------------------------------------------------------------


def test_torch_file_plain_state_dict(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(_state(), path)
    _assert_same(load_state_dict_file(path), _state())


def test_torch_legacy_serialisation(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    _assert_same(load_state_dict_file(path), _state())


def test_weights_only_refuses_arbitrary_object(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _state(), "hook": _Exploit(f"touch {marker}")}, path)
    with pytest.raises(RemError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refusing to load global ")
    assert "system" in message
    assert not marker.exists()


def test_safe_globals_allow_listed_namespace(tmp_path):
    # LAVT snapshots pickle their argparse.Namespace next to the weights.
    path = tmp_path / "lavt.pth"
    torch.save({"model": _state(), "args": argparse.Namespace(lr=5e-5), "epoch": 39}, path)
    with pytest.raises(RemError, match=r"refusing to load global argparse\.Namespace"):
        load_state_dict_file(path)
    _assert_same(load_state_dict_file(path, safe_globals=[argparse.Namespace]), _state())
    raw = load_torch_file(path, safe_globals=[argparse.Namespace])
    assert raw["args"].lr == 5e-5 and raw["epoch"] == 39


def test_mmcv_checkpoint_unwraps_and_strips_module_prefix(tmp_path):
    state = collections.OrderedDict((f"module.{k}", v) for k, v in _state().items())
    path = tmp_path / "solo_r50.pth"
    meta = {"mmcv_version": "0.2.16", "CLASSES": ("person", "bicycle"), "epoch": 36}
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}}}, path)
    loaded = load_state_dict_file(path, "mmcv")
    _assert_same(loaded, _state())
    assert list(loaded) == list(_state())


def test_preferred_key_order(tmp_path):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in _state().items()}
    path = tmp_path / "seqtr.pth"
    torch.save({"state_dict": _state(), "ema_state_dict": ema, "epoch": 3}, path)
    _assert_same(load_state_dict_file(path), _state())
    _assert_same(load_state_dict_file(path, keys=("ema_state_dict", "state_dict")), ema)


def test_unwrap_errors_name_the_problem():
    with pytest.raises(RemError, match=r"no state dict found.*top-level keys: \['epoch', 'step'\]"):
        unwrap_state_dict({"epoch": 1, "step": 2}, "x.pth")
    with pytest.raises(RemError, match="expected a dict of weights, got list"):
        unwrap_state_dict([1, 2], "x.pth")
    with pytest.raises(RemError, match=r"x\.pth: model\.b: expected an array, got int"):
        unwrap_state_dict({"model": {"a": torch.zeros(1), "model.b": 3}}, "x.pth")


def test_partial_module_prefix_is_kept():
    state = unwrap_state_dict({"module.a": torch.zeros(1), "b": torch.zeros(1)})
    assert list(state) == ["module.a", "b"]


def test_unreadable_torch_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(RemError, match="not a readable torch file"):
        load_state_dict_file(path)
    with pytest.raises(RemError, match="no such file"):
        load_state_dict_file(tmp_path / "missing.pth")


# --- formats ----------------------------------------------------------------------------------


def test_guess_format_from_suffix_and_content(tmp_path):
    assert guess_format(tmp_path / "a.PKL") == "detectron2-pkl"
    assert guess_format(tmp_path / "a.safetensors") == "safetensors"
    assert guess_format(tmp_path / "a.pth") == "torch"
    zipped = tmp_path / "snapshot_no_suffix"
    torch.save(_state(), zipped)
    assert guess_format(zipped) == "torch"
    st = tmp_path / "weights.data"
    save_checkpoint_safetensors(st, _state(), {"a": 1})
    assert guess_format(st) == "safetensors"
    _assert_same(load_state_dict_file(st), _state())
    unknown = tmp_path / "mystery.bin2"
    unknown.write_bytes(b"\x80\x04junk")
    with pytest.raises(RemError, match="cannot tell the weights format"):
        guess_format(unknown)


# --- safetensors ------------------------------------------------------------------------------


def test_safetensors_round_trip_with_config(tmp_path, toy):
    config = toy.MLPConfig(hidden=5, tags={"lr": 0.1})
    path = tmp_path / "ckpt" / "model.safetensors"
    save_checkpoint_safetensors(path, _state(), config, arch="mlp-tiny", metadata={"step": "10"})
    # The metadata is readable by the safetensors library itself.
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata()
    assert json.loads(raw[CONFIG_KEY]) == config.model_dump(mode="json")
    assert raw[ARCH_KEY] == "mlp-tiny"
    assert raw["step"] == "10"
    assert raw["format"] == "pt"

    checkpoint = load_checkpoint_safetensors(path)
    _assert_same(checkpoint.state_dict, _state())
    assert toy.MLPConfig.model_validate(checkpoint.config) == config
    assert checkpoint.arch == "mlp-tiny"
    # Only the final file remains: the temporary file was renamed over it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]


def test_safetensors_shared_and_noncontiguous_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": base, "tied": base, "view": base[:, 1], "t": base.t()}
    path = tmp_path / "shared.safetensors"
    save_checkpoint_safetensors(path, state, {})
    loaded = load_state_dict_file(path)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_safetensors_bad_input_leaves_no_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(TypeError, match=r"state_dict\['x'\] is a ndarray"):
        save_checkpoint_safetensors(path, {"x": np.zeros(2)}, {})
    assert list(tmp_path.iterdir()) == []
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(RemError, match="not a readable safetensors file"):
        load_state_dict_file(path)


def test_build_from_checkpoint_round_trip(tiny_models, tmp_path):
    torch.manual_seed(1)
    model = get_model("mlp-tiny", hidden=7)
    config = get_model_config("mlp-tiny", hidden=7)
    path = tmp_path / "mlp.safetensors"
    save_checkpoint_safetensors(path, model.state_dict(), config, arch="mlp-tiny")

    rebuilt = build_from_checkpoint(path)
    assert rebuilt.fc1.weight.shape == (7, 8)
    x = torch.randn(4, 8)
    assert torch.equal(rebuilt(x), model(x))
    assert sum(p.numel() for p in rebuilt.parameters()) == parameter_count("mlp-tiny", hidden=7)


def test_build_from_checkpoint_errors(tiny_models, tmp_path, toy):
    plain = tmp_path / "plain.safetensors"
    save_checkpoint_safetensors(plain, {"w": torch.zeros(1)}, {})
    with pytest.raises(RemError, match="not a rem model checkpoint"):
        build_from_checkpoint(plain)

    wrong = tmp_path / "wrong.safetensors"
    small = nn.Linear(2, 2)
    save_checkpoint_safetensors(wrong, small.state_dict(), toy.MLPConfig(), arch="mlp-tiny")
    with pytest.raises(RemError, match="weights do not fit 'mlp-tiny'"):
        build_from_checkpoint(wrong)

    stale = tmp_path / "stale.safetensors"
    save_checkpoint_safetensors(stale, small.state_dict(), {"depth": 3}, arch="mlp-tiny")
    with pytest.raises(RemError, match="stored config does not fit MLPConfig"):
        build_from_checkpoint(stale)
