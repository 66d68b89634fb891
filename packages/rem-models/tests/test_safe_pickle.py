"""The restricted unpickler: real detectron2-style pickles load, anything else is refused."""

from __future__ import annotations

import collections
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from rem_core.errors import RemError
from rem_models.checkpoints import load_state_dict_file
from rem_models.safe_pickle import load_pickle


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "backbone.net.pos_embed": rng.standard_normal((1, 5, 4)).astype(np.float32),
        "roi_heads.box_predictor.cls_score.weight": rng.standard_normal((3, 2)).astype(np.float16),
        "backbone.bottom_up.stem.num_batches_tracked": np.array(7, dtype=np.int64),  # 0-d
        "proposal_generator.empty": np.zeros((0, 4), dtype=np.float32),
        "ints": np.arange(6, dtype=np.int64).reshape(2, 3),
    }


def _d2_file(tmp_path, protocol: int, model=None):
    model = _arrays() if model is None else model
    payload = {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    path = tmp_path / f"model_final_p{protocol}.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_loads_detectron2_pickle_any_protocol(tmp_path, protocol):
    path = _d2_file(tmp_path, protocol)
    raw = load_pickle(path)
    assert raw["__author__"] == "Detectron2 Model Zoo"
    assert raw["matching_heuristics"] is True
    for key, expected in _arrays().items():
        np.testing.assert_array_equal(raw["model"][key], expected)
        assert raw["model"][key].dtype == expected.dtype

    state = load_state_dict_file(path)  # format from the .pkl suffix
    assert set(state) == set(_arrays())
    for key, expected in _arrays().items():
        tensor = state[key]
        assert isinstance(tensor, torch.Tensor)
        assert tuple(tensor.shape) == expected.shape
        assert tensor.numpy().dtype == expected.dtype
        np.testing.assert_array_equal(tensor.numpy(), expected)
    assert state["backbone.bottom_up.stem.num_batches_tracked"].ndim == 0
    assert state["proposal_generator.empty"].numel() == 0


def test_ordered_dict_and_numpy_scalars(tmp_path):
    model = collections.OrderedDict(
        [("b.weight", np.ones((2,), np.float32)), ("a.scale", np.float32(2.5))]
    )
    path = _d2_file(tmp_path, 4, model)
    state = load_state_dict_file(path)
    assert list(state) == ["b.weight", "a.scale"]  # order kept
    assert state["a.scale"].item() == 2.5
    assert state["a.scale"].dtype == torch.float32


def test_numpy1_module_names_resolve_without_touching_numpy_core(tmp_path):
    # Files written with numpy < 2 (every released detectron2 model) name numpy.core.*; numpy 2
    # only has numpy._core. Rewrite a protocol-0 pickle's text globals to the old names.
    data = pickle.dumps({"model": _arrays()}, protocol=0)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in old
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # importing numpy.core warns under numpy 2
        state = load_state_dict_file(path)
    np.testing.assert_array_equal(state["ints"].numpy(), _arrays()["ints"])


def test_big_endian_arrays_are_converted(tmp_path):
    path = _d2_file(tmp_path, 4, {"w": np.arange(3, dtype=">f4")})
    tensor = load_state_dict_file(path)["w"]
    assert tensor.tolist() == [0.0, 1.0, 2.0]


class _Exploit:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_refuses_os_system_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    model = {"w": np.zeros(2, np.float32), "evil": _Exploit(f"touch {marker}")}
    path = _d2_file(tmp_path, 4, model)
    # The pickle really would run the command if loaded with the standard unpickler.
    assert b"system" in path.read_bytes()
    with pytest.raises(RemError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refusing to unpickle global ")
    assert f"{os.system.__module__}.system" in message  # posix.system on Linux
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # eval of arbitrary code
        b"cbuiltins\ngetattr\n(S'x'\nS'y'\ntR.",
        b"c__builtin__\neval\n(S'1+1'\ntR.",  # Python 2 spelling
        b"cnumpy\nload\n(S'x'\ntR.",  # numpy, but not an array reconstructor
        b"cnumpy.testing._private.utils\nrunstring\n(S'1'\n(dtR.",
        b"ctorch._utils\n_rebuild_tensor_v2\n(tR.",
    ],
)
def test_refuses_other_globals(tmp_path, payload):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    module, name = payload[1:].split(b"\n")[:2]
    with pytest.raises(
        RemError, match=f"refusing to unpickle global {module.decode()}.{name.decode()}"
    ):
        load_pickle(path)


def test_codecs_encode_only_for_latin1(tmp_path):
    # Protocol 2 writes bytes as _codecs.encode(text, "latin1"); another codec is refused.
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vx\nVzlib_codec\ntR.")
    with pytest.raises(RemError, match="only allowed with latin1"):
        load_pickle(path)
    path.write_bytes(b"c_codecs\nencode\n(Vab\nVlatin1\ntR.")
    assert load_pickle(path) == b"ab"


def test_persistent_ids_are_refused(tmp_path):
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"Pkey\n.")
    with pytest.raises(RemError, match="persistent id"):
        load_pickle(path)


def test_truncated_and_missing_files(tmp_path):
    path = _d2_file(tmp_path, 4)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(RemError, match="not a readable weights pickle"):
        load_pickle(path)
    with pytest.raises(RemError, match="no such file"):
        load_pickle(tmp_path / "missing.pkl")


def test_non_array_values_in_model_are_named(tmp_path):
    path = _d2_file(tmp_path, 4, {"w": np.zeros(1, np.float32), "note": "hello"})
    with pytest.raises(RemError) as info:
        load_state_dict_file(path)
    assert str(info.value) == f"{path}: note: expected an array, got str"
