"""SeqTR through `rem train MODEL --refs`: run folder, exact resume, refusals, instances.json.

The resume test turns on everything random in a SeqTR run: large-scale jitter and the
per-epoch expression draw (data), dropout and contour shuffles (the global torch RNG), Adam's
amsgrad state and the EMA. A run that crashes mid-epoch and is resumed from its last
snapshot must end bit-identical to an uninterrupted one, which holds only if the snapshot
restores the model, EMA (parameters and BatchNorm buffers), optimiser, schedule, step and RNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import rem_models.seqtr.training as training
from rem_core.cli.main import cli
from rem_models.checkpoints import load_checkpoint_safetensors
from rem_models.engine.metrics_log import read_metrics
from rem_models.engine.training_state import list_snapshots, load_snapshot
from rem_models.lavt.synthetic import make_referring_sample
from rem_models.registry import get_model
from rem_models.seqtr.data import read_refer_items, write_seqtr_instances

RANDOM = ["model.head.dropout=0.1", "model.shuffle_fraction=0.5", "lsj=true", "ema=true"]
RUN = [*RANDOM, "epochs=3", "batch_size=4", "lr=1e-3", "warmup_epochs=1", "decay_epochs=[2]"]
RUN += ["checkpoint_every=4", "keep_checkpoints=5"]


class Crash(Exception):
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_referring_sample(tmp_path_factory.mktemp("seqtr_run"), 5, size=48, seed=2)


def _train(data, out: Path, *extra: str, model: str = "seqtr_test_mask"):
    args = ["train", model, "--refs", str(data.refs), "--images", str(data.image_dir)]
    args += ["--out", str(out), "--device", "cpu", "--seed", "4"]
    for item in RUN:
        args += ["--set", item]
    return CliRunner().invoke(cli, [*args, *extra])


def test_resume_after_a_crash_is_bit_identical(data, tmp_path, monkeypatch) -> None:
    result = _train(data, tmp_path / "straight")
    assert result.exit_code == 0, result.output
    straight = tmp_path / "straight"
    # 10 refs, batch 4: 3 steps per epoch; snapshots after every epoch and every 4 steps
    assert [s for s, _ in list_snapshots(straight)] == [3, 4, 6, 8, 9]

    calls = {"n": 0}
    real = training.make_batch

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # the batch of step 6: the snapshot of step 4 is the newest
            raise Crash("power cut")
        return real(*args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(training, "make_batch", crashing)
    result = _train(data, run)
    assert isinstance(result.exception, Crash)
    assert [s for s, _ in list_snapshots(run)] == [3, 4]
    monkeypatch.setattr(training, "make_batch", real)

    result = _train(data, run, "--resume")
    assert result.exit_code == 0, result.output
    a = load_snapshot(list_snapshots(straight)[-1][1])
    b = load_snapshot(list_snapshots(run)[-1][1])
    assert a["step"] == b["step"] == 9 and a["ema_updates"] == b["ema_updates"] == 9
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert any("running_mean" in k for k in a["ema"])  # EMA buffers are compared too
    first, second = (
        load_file(straight / "model_final.safetensors"),
        load_file(run / "model_final.safetensors"),
    )
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(torch.equal(first[k], a["ema"][k]) for k in first)  # the EMA is exported
    # the crashed run's record of step 5 was replaced, not duplicated; losses are identical
    assert read_metrics(run / "metrics.jsonl") == read_metrics(straight / "metrics.jsonl")
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, 10))
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["train_config"]["seed"] == 4 and manifest["steps_done"] == 9
    # training longer continues the same schedule: 3 + 1 epochs == 4 epochs
    assert _train(data, run, "--resume", "--set", "epochs=4").exit_code == 0
    result = _train(data, tmp_path / "four", "--set", "epochs=4")
    assert result.exit_code == 0, result.output
    longer, four = (
        load_file(run / "model_final.safetensors"),
        load_file(tmp_path / "four" / "model_final.safetensors"),
    )
    assert all(torch.equal(longer[k], four[k]) for k in four)
    assert not all(torch.equal(longer[k], first[k]) for k in first)


def test_refusals_are_one_line_errors(data, tmp_path) -> None:
    result = _train(data, tmp_path / "run", "--set", "epochs=1", model="seqtr_test_box")
    assert result.exit_code == 0, result.output
    again = _train(data, tmp_path / "run", model="seqtr_test_box")
    assert again.exit_code == 2 and "already holds a run; pass --resume" in again.output
    empty = _train(data, tmp_path / "empty", "--resume", model="seqtr_test_box")
    assert empty.exit_code == 2 and "nothing to resume" in empty.output
    other = _train(data, tmp_path / "run", "--resume", model="seqtr_test_mask")
    assert other.exit_code == 2 and "holds a run of 'seqtr_test_box'" in other.output
    swin = _train(data, tmp_path / "x", "--init-swin", str(data.refs), model="seqtr_test_box")
    assert swin.exit_code == 2 and "--init-swin does not apply to seqtr_test_box" in swin.output
    runner = CliRunner()
    base = ["--image-dir", str(data.image_dir), "--out", str(tmp_path / "y")]
    no_refs = runner.invoke(cli, ["train", "seqtr_test_box", "--train-json", "x.json", *base])
    assert no_refs.exit_code == 2
    assert "seqtr_test_box trains on referring expressions: give --refs" in no_refs.output
    vitdet = runner.invoke(cli, ["train", "vitdet_test", "--refs", str(data.refs), *base])
    assert vitdet.exit_code == 2 and "does not train on referring expressions" in vitdet.output
    assert not (tmp_path / "y").exists()


def test_seqtr_instances_file_init_and_predict(data, tmp_path) -> None:
    """SeqTR's instances.json is told by content; RES starts from REC as Partial-RES does."""
    items = read_refer_items(data.refs)
    instances = write_seqtr_instances(tmp_path / "instances.json", {"train": items, "val": []})
    runner = CliRunner()

    def run(*args: str):
        common = ["--refs", str(instances), "--images", str(data.image_dir), "--device", "cpu"]
        return runner.invoke(cli, [*args, *common, "--set", "epochs=1", "--set", "batch_size=5"])

    rec = run("train", "seqtr_test_box", "--out", str(tmp_path / "rec"))
    assert rec.exit_code == 0, rec.output
    rec_file = tmp_path / "rec" / "model_final.safetensors"
    res = run("train", "pres_test_mask", "--out", str(tmp_path / "res"), "--init", str(rec_file))
    assert res.exit_code == 0, res.output
    # what should load: same name and shape, except the word table (new vocabulary)
    box = load_checkpoint_safetensors(rec_file).state_dict
    fresh = get_model("pres_test_mask").state_dict()
    fitting = [
        k
        for k, v in box.items()
        if k in fresh and v.shape == fresh[k].shape and k != "lan_enc.embedding.weight"
    ]
    assert "head.transformer.seq_positional_encoding.embedding.weight" not in fitting
    loaded = json.loads((tmp_path / "res" / "run.json").read_text())["init"]["init"]["loaded"]
    assert loaded == len(fitting) and f"initialised {loaded}/{len(fresh)} tensors" in res.output

    preds = tmp_path / "preds.json"
    predict = ["predict", "--checkpoint", str(rec_file), "--refs", str(instances)]
    predict += ["--split", "train", "--images", str(data.image_dir), "--out", str(preds)]
    predicted = runner.invoke(cli, [*predict[:1], "seqtr_test_box", *predict[1:]])
    assert predicted.exit_code == 0, predicted.output
    records = json.loads(preds.read_text())
    assert len(records) == sum(len(it.expressions) for it in items)
    assert all(len(r["bbox"]) == 4 for r in records)
    wrong = runner.invoke(cli, [*predict[:1], "pres_test_mask", *predict[1:]])
    assert wrong.exit_code == 2 and "holds 'seqtr_test_box', not 'pres_test_mask'" in wrong.output
