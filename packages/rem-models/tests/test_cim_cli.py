"""`rem cim ...` through the real `rem` click group (the entry point is patched in)."""

from __future__ import annotations

import pytest
import torch

from rem_core.io import read_json
from rem_core.synth import make_sample

torch.set_num_threads(1)


@pytest.fixture
def cli(rem_cli):
    return rem_cli


def test_proposals_train_predict_export(cli, tmp_path):
    s = make_sample(
        tmp_path / "d",
        num_images=5,
        width=96,
        height=64,
        num_categories=3,
        image_format="png",
        seed=2,
    )
    props, ckpt = tmp_path / "p.json", tmp_path / "cim.safetensors"
    preds, pseudo = tmp_path / "preds.json", tmp_path / "pseudo.json"
    r = cli("cim", "proposals", s.exact, s.image_dir, props, "--scales", "50,150")
    assert r.exit_code == 0, r.output
    assert len(read_json(props)["images"]) == 5
    r = cli(
        "cim",
        "train",
        s.exact,
        props,
        s.image_dir,
        ckpt,
        "--model",
        "cim_test",
        "--iterations",
        8,
        "--step",
        6,
        "--lr",
        0.01,
        "--scales",
        "",
    )
    assert r.exit_code == 0, r.output
    assert "trained 8 iterations" in r.output
    r = cli("cim", "predict", ckpt, s.exact, props, s.image_dir, preds, "--flip")
    assert r.exit_code == 0, r.output
    results = read_json(preds)
    assert results and {d["category_id"] for d in results} <= {1, 2, 3}
    r = cli("cim", "export", preds, s.exact, pseudo, "--min-score", 0.0)
    assert r.exit_code == 0, r.output
    assert len(read_json(pseudo)["annotations"]) == len(results)


def test_user_errors_exit_2_with_one_line(cli, tmp_path):
    s = make_sample(tmp_path / "d", num_images=1, width=64, height=64, num_categories=1)
    r = cli("cim", "proposals", s.exact, s.image_dir, tmp_path / "p.json", "--method", "sam")
    assert r.exit_code == 2
    assert (
        r.output.strip()
        == "error: --checkpoint: --method sam needs --checkpoint FILE (SAM weights)"
    )
    r = cli("cim", "proposals", s.exact, s.image_dir, tmp_path / "p.json", "--scales", "a,b")
    assert r.exit_code == 2 and "expected numbers separated by commas" in r.output
