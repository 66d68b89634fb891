"""Throwaway architectures registered into an empty registry, one per test.

No real family is registered here: the tiny MLPs exist only to exercise the registry, the
overrides and the CLI with parameter counts that are easy to work out by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pydantic import Field
from torch import nn

from rem_models import ModelConfig, Weights, register_model, registry


class HeadConfig(ModelConfig):
    """A nested config, to exercise dotted overrides."""

    out_dim: int = 3
    bias: bool = True


class MLPConfig(ModelConfig):
    in_dim: int = 8
    hidden: int = 16
    head: HeadConfig = Field(default_factory=HeadConfig)
    tags: dict[str, float] = Field(default_factory=dict)


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.in_dim, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.head.out_dim, bias=config.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def mlp_params(in_dim: int, hidden: int, out_dim: int, bias: bool = True) -> int:
    """Parameter count of :class:`MLP`, worked out by hand: two weight matrices and biases."""
    return in_dim * hidden + hidden + hidden * out_dim + (out_dim if bias else 0)


TINY_WEIGHTS = Weights(
    name="toy-v1",
    url="https://example.invalid/weights/tiny/model_final_000000.pkl",
    sha256="ab" * 32,
    file_format="detectron2-pkl",
    num_params=mlp_params(8, 16, 3),
    metrics={"toy/ap": 12.5},
    recipe="not trained; a record for tests",
    source="rem test suite",
)


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Swap in an empty registry (and skip loading the real families) for one test."""
    fresh: dict = {}
    monkeypatch.setattr(registry, "_REGISTRY", fresh)
    monkeypatch.setattr(registry, "_families_loaded", True)
    return fresh


@pytest.fixture
def tiny_models(empty_registry: dict) -> dict:
    """Register ``mlp-tiny`` (defaults from the annotation) and ``mlp-wide`` (explicit config)."""

    @register_model("mlp-tiny", weights=[TINY_WEIGHTS])
    def mlp_tiny(config: MLPConfig) -> nn.Module:
        """A two-layer MLP for tests."""
        return MLP(config)

    @register_model("mlp-wide", config=MLPConfig(hidden=64))
    def mlp_wide(config: MLPConfig) -> nn.Module:
        """The same MLP, wider."""
        return MLP(config)

    return empty_registry


@pytest.fixture
def toy() -> SimpleNamespace:
    """The toy classes and hand counts, as a fixture so test modules need not import conftest."""
    return SimpleNamespace(
        MLP=MLP,
        MLPConfig=MLPConfig,
        HeadConfig=HeadConfig,
        mlp_params=mlp_params,
        weights=TINY_WEIGHTS,
    )


@pytest.fixture
def rem_cli():
    """Run the installed `rem` command group in-process: ``rem_cli("cim", "train", ...)``."""
    from click.testing import CliRunner

    from rem_core.cli.main import cli

    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args])
