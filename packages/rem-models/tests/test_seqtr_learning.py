"""A tiny SeqTR learns the box and mask tasks of the synthetic referring set on CPU.

Each image holds two disjoint shapes, each a ref. A model that ignores the sentence gives the
same output for both refs of an image, so at most one of them reaches box IoU 0.5 (accuracy
<= 0.5), and the two mask IoUs of one prediction against disjoint masks sum to at most 1
(mIoU <= 0.5). The thresholds below are well above these text-blind bounds.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_models.lavt.synthetic import make_referring_sample
from rem_models.registry import get_model
from rem_models.seqtr.cli import seqtr
from rem_models.seqtr.data import read_refer_items
from rem_models.seqtr.language import build_vocabulary
from rem_models.seqtr.predict import box_accuracy, mask_ious, predict_items
from rem_models.seqtr.training import TrainSettings, train_seqtr

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    data = make_referring_sample(tmp_path_factory.mktemp("seqtr_ref"), 12, size=64, seed=0)
    items = read_refer_items(data.refs)
    words = build_vocabulary(e for it in items for e in it.expressions)
    return data, items, {w: i for i, w in enumerate(words)}


def _train(name: str, synthetic):
    data, items, vocab = synthetic
    torch.manual_seed(0)
    model = get_model(name, **{"head.d_model": 64})
    settings = TrainSettings(
        epochs=40, batch_size=8, lr=2e-3, warmup_epochs=1, decay_epochs=(32,), lsj=False, ema=False
    )
    model, losses = train_seqtr(model, items, data.image_dir, vocab, settings, max_tokens=8)
    assert losses[-1] < 0.5 * losses[0]
    preds = predict_items(model, items, data.image_dir, vocab, max_tokens=8, all_sentences=True)
    assert len(preds) == 3 * len(items)
    return preds, items


def test_box_task_learns(synthetic) -> None:
    preds, items = _train("seqtr_test_box", synthetic)
    assert box_accuracy(preds, items) >= 0.75


def test_mask_task_learns(synthetic) -> None:
    preds, items = _train("seqtr_test_mask", synthetic)
    assert mask_ious(preds, items).mean() >= 0.6


def test_train_and_predict_commands(synthetic, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(cli.commands, "seqtr", seqtr)
    data, items, _ = synthetic
    ckpt = tmp_path / "rec.safetensors"
    runner = CliRunner()
    args = ["seqtr", "train", "--model", "seqtr_test_box", "--data", str(data.refs)]
    args += ["--images", str(data.image_dir), "--out", str(ckpt), "--epochs", "1"]
    res = runner.invoke(cli, [*args, "--batch-size", "8", "--set", "input_size=64"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "preds.json"
    res = runner.invoke(
        cli,
        [
            "seqtr",
            "predict",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(data.refs),
            "--images",
            str(data.image_dir),
            "--out",
            str(out),
            "--split",
            "train",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "box Acc@0.5" in res.output
    preds = json.loads(out.read_text())
    assert [p["ref_id"] for p in preds] == [it.ref_id for it in items]
    assert all(len(p["bbox"]) == 4 for p in preds)
    # mask model initialised from the box checkpoint (position table differs and is skipped)
    res = runner.invoke(
        cli,
        [
            "seqtr",
            "train",
            "--model",
            "seqtr_test_mask",
            "--data",
            str(data.refs),
            "--images",
            str(data.image_dir),
            "--out",
            str(tmp_path / "res.safetensors"),
            "--epochs",
            "1",
            "--init",
            str(ckpt),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "initialised" in res.output
    res = runner.invoke(cli, ["seqtr", "train", "--data", str(out), "--images", "x", "--out", "y"])
    assert res.exit_code == 2
