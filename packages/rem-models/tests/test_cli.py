"""`rem models list/info` through the real `rem` click group, with a monkeypatched registry."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rem_core.cli.main import cli


def _run(*args: str):
    return CliRunner().invoke(cli, ["models", *args], catch_exceptions=False)


def test_list_empty_registry(empty_registry):
    result = _run("list")
    assert result.exit_code == 0
    assert result.output.strip() == "no models registered yet"
    assert json.loads(_run("list", "--json").output) == []


def test_list_table(tiny_models):
    result = _run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tiny = next(line for line in lines if "mlp-tiny" in line)
    wide = next(line for line in lines if "mlp-wide" in line)
    assert "195" in tiny and "toy-v1" in tiny  # 8*16 + 16 + 16*3 + 3 parameters
    assert "771" in wide  # 8*64 + 64 + 64*3 + 3
    assert "MLPConfig" in tiny


def test_list_json_counts_and_pattern(tiny_models, toy):
    rows = json.loads(_run("list", "--json").output)
    assert [r["name"] for r in rows] == ["mlp-tiny", "mlp-wide"]
    assert rows[0]["params"] == toy.mlp_params(8, 16, 3)
    assert rows[1]["params"] == toy.mlp_params(8, 64, 3)
    assert rows[0]["weights"] == ["toy-v1"]
    assert rows[1]["weights"] == []
    assert rows[0]["summary"] == "A two-layer MLP for tests."
    rows = json.loads(_run("list", "*wide", "--json").output)
    assert [r["name"] for r in rows] == ["mlp-wide"]


def test_info_large_count_is_humanised(tiny_models, toy):
    result = _run("info", "mlp-wide", "--set", "hidden=1000")
    assert result.exit_code == 0, result.output
    count = toy.mlp_params(8, 1000, 3)  # 12,003
    assert f"parameters: {count:,} (12.0K)" in result.output
    assert "weights: none published" in result.output


def test_list_pattern_without_match(tiny_models):
    result = _run("list", "vitdet-*")
    assert result.exit_code == 0
    assert result.output.strip() == "no registered model matches 'vitdet-*'"


def test_info_shows_config_params_and_weights(tiny_models, toy):
    result = _run("info", "mlp-tiny")
    assert result.exit_code == 0, result.output
    assert "parameters: 195\n" in result.output
    assert '"hidden": 16' in result.output
    assert "toy-v1  detectron2-pkl  195 params" in result.output
    assert f"url: {toy.weights.url}\n" in result.output
    assert f"sha256: {'ab' * 32}\n" in result.output
    assert "metrics: toy/ap 12.5" in result.output
    assert "recipe: not trained; a record for tests" in result.output


def test_info_json_with_overrides(tiny_models, toy):
    result = _run("info", "mlp-tiny", "--set", "hidden=4", "--set", "head.bias=false", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["config"]["hidden"] == 4
    assert info["config"]["head"] == {"out_dim": 3, "bias": False}
    assert info["params"] == toy.mlp_params(8, 4, 3, bias=False) == 48
    assert info["weights"][0]["url"] == toy.weights.url
    assert info["weights"][0]["num_params"] == 195


def test_info_unknown_key_exits_2(tiny_models):
    result = CliRunner().invoke(cli, ["models", "info", "mlp-tiny", "--set", "depth=2"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --set: unknown config key 'depth': no field 'depth'; "
        "valid keys: head, hidden, in_dim, tags"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("mlp-tiy", "did you mean mlp-tiny"), ("vitdet-b", "known: mlp-tiny, mlp-wide")],
)
def test_info_unknown_model_exits_2(tiny_models, name, message):
    result = CliRunner().invoke(cli, ["models", "info", name])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: unknown model {name!r}")
    assert message in result.output
