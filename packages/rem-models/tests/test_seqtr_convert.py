"""SeqTR checkpoint conversion: EMA preferred, num_ray / vocabulary read, strict checks."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_core.errors import RemError
from rem_models.checkpoints import build_from_checkpoint
from rem_models.registry import get_model, get_model_config
from rem_models.seqtr.convert import (
    convert_seqtr_file,
    convert_seqtr_state_dict,
    infer_config,
    read_seqtr_file,
)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seqtr_command(monkeypatch):
    """The coordinator registers ``seqtr`` as an entry point; tests add it directly."""
    from rem_models.seqtr.cli import seqtr

    monkeypatch.setitem(cli.commands, "seqtr", seqtr)


def _seqtr_file(path, name: str, seed: int, with_ema: bool = True, **over):
    """A file shaped like SeqTR's: {epoch, state_dict, ema_state_dict, optimizer} with module."""
    torch.manual_seed(seed)
    raw = {f"module.{k}": v for k, v in get_model(name, **over).state_dict().items()}
    torch.manual_seed(seed + 1)
    ema = {f"module.{k}": v for k, v in get_model(name, **over).state_dict().items()}
    obj = {"epoch": 3, "state_dict": raw, "optimizer": {"lr": 1e-3}, "miou": 0.5}
    if with_ema:
        obj["ema_state_dict"] = ema
    torch.save(obj, path)
    return raw, ema


def test_ema_weights_are_preferred_and_loaded_strictly(tmp_path) -> None:
    src = tmp_path / "segm_best.pth"
    raw, ema = _seqtr_file(src, "seqtr_test_mask", 0)
    key = "head.transformer.query_embedding.weight"
    state = read_seqtr_file(src)
    assert torch.equal(state[key], ema[f"module.{key}"])  # module. stripped
    assert not torch.equal(ema[f"module.{key}"], raw[f"module.{key}"])
    out, counts = convert_seqtr_file(
        src,
        tmp_path / "out.safetensors",
        base=get_model_config("seqtr_test_mask"),
        arch="seqtr_test_mask",
    )
    model = build_from_checkpoint(out)
    assert torch.equal(model.state_dict()[key], ema[f"module.{key}"])
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_plain_state_dict_without_ema(tmp_path) -> None:
    src = tmp_path / "det_best.pth"
    raw, _ = _seqtr_file(src, "seqtr_test_box", 4, with_ema=False)
    state = read_seqtr_file(src)
    assert all(torch.equal(state[k.removeprefix("module.")], raw[k]) for k in raw)


def test_num_ray_and_vocabulary_come_from_the_tensors(tmp_path) -> None:
    src = tmp_path / "segm.pth"
    _seqtr_file(src, "seqtr_test_mask", 0, num_ray=5, **{"language.vocab_size": 40})
    state = {k.removeprefix("module."): v for k, v in read_seqtr_file(src).items()}
    cfg = infer_config(state, get_model_config("seqtr_test_box"))
    assert (cfg.task, cfg.num_ray, cfg.language.vocab_size) == ("mask", 5, 40)
    out, _ = convert_seqtr_file(
        src,
        tmp_path / "o.safetensors",
        base=get_model_config("seqtr_test_box"),
        arch="seqtr_test_mask",
    )
    model = build_from_checkpoint(out)
    assert model.num_ray == 5
    assert model.head.transformer.seq_positional_encoding.embedding.weight.shape[0] == 11


def test_mismatches_are_named() -> None:
    torch.manual_seed(0)
    cfg = get_model_config("seqtr_test_mask")
    state = get_model("seqtr_test_mask").state_dict()
    with pytest.raises(RemError, match="num_ray=8"):
        convert_seqtr_state_dict(state, cfg.model_copy(update={"num_ray": 6}))
    with pytest.raises(RemError, match="vocab_size=32"):
        convert_seqtr_state_dict(
            state, get_model_config("seqtr_test_mask", **{"language.vocab_size": 50})
        )
    with pytest.raises(RemError, match="predicts contours"):
        convert_seqtr_state_dict(state, get_model_config("seqtr_test_box"))
    broken = dict(state)
    del broken["fusion.top_project.0.bn.weight"]
    broken["head.extra"] = torch.zeros(1)
    with pytest.raises(
        RemError, match=r"missing \['fusion.top_project.0.bn.weight'\], unexpected \['head.extra'\]"
    ):
        convert_seqtr_state_dict(broken, cfg)
    bad = dict(state)
    bad["head.predictor.0.fc.bias"] = torch.zeros(3)
    with pytest.raises(RemError, match=r"head\.predictor\.0\.fc\.bias"):
        convert_seqtr_state_dict(bad, cfg)
    assert set(convert_seqtr_state_dict(state, cfg)) == set(state)


def test_rem_seqtr_convert_cli(tmp_path) -> None:
    src = tmp_path / "segm.pth"
    _seqtr_file(src, "seqtr_test_mask", 0)
    out = tmp_path / "o.safetensors"
    res = CliRunner().invoke(
        cli, ["seqtr", "convert", str(src), str(out), "--base", "seqtr_test_mask"]
    )
    assert res.exit_code == 0, res.output
    assert "num_ray 8" in res.output and "parameters" in res.output
    assert out.is_file()
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, bad)
    res = CliRunner().invoke(cli, ["seqtr", "convert", str(bad), str(out)])
    assert res.exit_code == 2
    assert "not a SeqTR state dict" in res.output


def test_partial_res_checkpoints_are_recognised(tmp_path) -> None:
    src = tmp_path / "pres.pth"
    _seqtr_file(src, "pres_test_mask", 0)
    state = read_seqtr_file(src)
    cfg = infer_config(state, get_model_config("seqtr_test_mask"))
    assert cfg.partial_res and cfg.num_ray == 8
    with pytest.raises(RemError, match="partial_res=True"):
        convert_seqtr_state_dict(state, get_model_config("seqtr_test_mask"))
    out, _ = convert_seqtr_file(
        src,
        tmp_path / "p.safetensors",
        base=get_model_config("pres_test_mask"),
        arch="pres_test_mask",
    )
    assert build_from_checkpoint(out).head.partial_res
