"""`rem synth` through the CLI group."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from rem_core.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_synth_writes_the_sample(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["synth", str(tmp_path), "-n", "2", "--width", "128", "--height", "96", "--format", "png"],
    )
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "exact.json") in result.output
    exact = orjson.loads((tmp_path / "exact.json").read_bytes())
    assert [img["width"] for img in exact["images"]] == [128, 128]
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "synth_000001.png",
        "synth_000002.png",
    ]


def test_synth_large_and_eval_benchmark(tmp_path):
    result = CliRunner().invoke(
        cli, ["synth", str(tmp_path), "--large", "40", "--segmentation", "uncompressed"]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads((tmp_path / "instances_large.json").read_bytes())
    assert len(data["images"]) == 40 and len(data["annotations"]) == round(40 * 860001 / 118287)
    assert not (tmp_path / "exact.json").exists()
    result = CliRunner().invoke(cli, ["synth", str(tmp_path), "--eval-benchmark", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "eval_gt.json").exists() and (tmp_path / "eval_results.json").exists()


def test_synth_bad_size_is_a_one_line_user_error(tmp_path):
    result = CliRunner().invoke(cli, ["synth", str(tmp_path), "--width", "10"])
    assert result.exit_code == 2
    assert "error: images must be at least 64x64 pixels, got 10x480" in result.output
    assert "Traceback" not in result.output
