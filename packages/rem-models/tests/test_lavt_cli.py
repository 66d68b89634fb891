"""LAVT through the `rem` CLI: convert a LAVT file, predict referring masks, train, resume."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch
from click.testing import CliRunner

from rem_core.cli.main import cli
from rem_models import get_model
from rem_models.checkpoints import build_from_checkpoint
from rem_models.lavt.convert import rem_key
from rem_models.lavt.synthetic import make_referring_sample, vocabulary

SIZE = 32
TINY = {
    "swin.embed_dim": 16,
    "swin.depths": [1, 1, 1, 1],
    "swin.num_heads": [1, 1, 2, 2],
    "swin.window_size": 4,
    "text.vocab_size": len(vocabulary()),
    "text.hidden_size": 32,
    "text.num_layers": 1,
    "text.num_heads": 2,
    "text.intermediate_size": 64,
    "image_size": SIZE,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sets(vocab) -> list[str]:
    items = [f"model.{k}={json.dumps(v)}" for k, v in TINY.items()]
    return [*items, f"model.text.tokenizer={vocab}"]


def _as_lavt_file(model, path, args) -> None:
    """Save ``model`` in LAVT's lavt layout (names from the converter's rules, inverted)."""
    ours = model.state_dict()
    by_target = {}
    stem = ["norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
    fusion = [
        "vis_project.0",
        "image_lang_att.f_query.0",
        "image_lang_att.f_key.0",
        "image_lang_att.f_value.0",
        "image_lang_att.W.0",
        "project_mm.0",
    ]
    names = [f"backbone.patch_embed.{m}.{p}" for m in ("proj", "norm") for p in ("weight", "bias")]
    for i in range(4):
        names += [f"backbone.layers.{i}.blocks.0.{m}.{p}" for m in stem for p in ("weight", "bias")]
        names += [f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"]
        names += [f"backbone.layers.{i}.fusion.{m}.{p}" for m in fusion for p in ("weight", "bias")]
        names += [f"backbone.layers.{i}.res_gate.{k}.weight" for k in (0, 2)]
        names += [f"backbone.layers.{i}.downsample.norm.{p}" for p in ("weight", "bias")]
        names += [f"backbone.layers.{i}.downsample.reduction.weight"]
        names += [f"backbone.norm{i}.{p}" for p in ("weight", "bias")]
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for level in "432":
        for n in "12":
            names += [f"classifier.conv{n}_{level}.weight"]
            names += [f"classifier.bn{n}_{level}.{p}" for p in bn]
    names += ["classifier.conv1_1.weight", "classifier.conv1_1.bias"]
    names += [f"bert_model.{k}" for k in model.text_encoder.bert.state_dict()]
    for name in names:
        target = rem_key(name)
        if target in ours:
            tensor = ours[target]
            by_target[name] = (
                tensor[..., None] if ".fusion." in name and "weight" in name else tensor
            )
    assert len(by_target) == len(ours)
    main = {k: v for k, v in by_target.items() if not k.startswith("bert_model.")}
    bert = {k[11:]: v for k, v in by_target.items() if k.startswith("bert_model.")}
    torch.save({"model": main, "bert_model": bert, "args": args, "epoch": 39}, path)


@pytest.fixture(scope="module")
def lavt_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("lavt_cli")
    data = make_referring_sample(root / "data", 3, size=48, seed=5, split="val")
    torch.manual_seed(0)
    model = get_model("lavt_test", **TINY, **{"text.tokenizer": str(data.vocab)}).eval()
    with torch.no_grad():
        model.decoder.predictor.bias.copy_(torch.tensor([0.0, 0.02]))
    args = argparse.Namespace(model="lavt", mha="", img_size=SIZE, fusion_drop=0.0)
    _as_lavt_file(model, root / "model_best_tiny.pth", args)
    return root, data, model


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_convert_predict_and_evaluate(lavt_file):
    root, data, model = lavt_file
    runner = CliRunner()
    out = root / "tiny.safetensors"
    sets = [a for s in _sets(data.vocab) for a in ("--set", s)]
    result = runner.invoke(
        cli, ["convert-checkpoint", "lavt_test", str(root / "model_best_tiny.pth"), str(out), *sets]
    )
    assert result.exit_code == 0, result.output
    assert "LAVT parameters: " in result.output and f"wrote {out}" in result.output
    rebuilt = build_from_checkpoint(out)
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key

    preds = root / "preds.json"
    result = runner.invoke(
        cli,
        [
            "predict",
            "lavt_test",
            "--checkpoint",
            str(out),
            "--refs",
            str(data.refs),
            "--images",
            str(data.image_dir),
            "--out",
            str(preds),
            "--mask-size",
            "input",
            "--split",
            "val",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    records = json.loads(preds.read_text())
    assert len(records) == 18 and all(r["segmentation"]["size"] == [SIZE, SIZE] for r in records)
    pytest.importorskip("rem_eval.referring")
    report = root / "report.json"
    result = runner.invoke(
        cli,
        [
            "eval-referring",
            str(data.refs),
            str(preds),
            "--preset",
            "legacy-lavt",
            "--resolution",
            f"square:{SIZE}",
            "--json",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["num_samples"] == 18


def test_convert_errors_are_one_line(lavt_file, tmp_path):
    root, _, _ = lavt_file
    runner = CliRunner()
    # The tiny file into the full-size model: the window does not match.
    result = runner.invoke(
        cli,
        [
            "convert-checkpoint",
            "lavt",
            str(root / "model_best_tiny.pth"),
            str(tmp_path / "x.safetensors"),
        ],
    )
    assert result.exit_code == 2
    assert "but the config has window 12; pass --set swin.window_size=4" in result.output
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": Evil()}, evil)
    result = runner.invoke(cli, ["convert-checkpoint", "lavt_test", str(evil), str(tmp_path / "y")])
    assert result.exit_code == 2 and "refusing to load global" in result.output
    assert result.output.startswith(f"error: {evil}: ") and not marker.exists()


def test_train_and_resume_through_the_cli(tmp_path):
    data = make_referring_sample(tmp_path / "data", 4, size=SIZE, seed=6)
    runner = CliRunner()
    sets = [
        a
        for s in [*_sets(data.vocab), "epochs=1", "batch_size=4", f"image_size={SIZE}"]
        for a in ("--set", s)
    ]
    base = [
        "train",
        "lavt_test",
        "--refs",
        str(data.refs),
        "--images",
        str(data.image_dir),
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    result = runner.invoke(cli, [*base, *sets])
    assert result.exit_code == 0, result.output
    final = tmp_path / "run" / "model_final.safetensors"
    assert f"trained lavt_test: {final}" in result.output
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["train_config"]["seed"] == 3 and manifest["epochs_done"] == 1
    assert build_from_checkpoint(final).image_size == SIZE
    result = runner.invoke(cli, [*base, *sets])
    assert result.exit_code == 2 and "already holds a run" in result.output
