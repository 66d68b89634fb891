"""rem-models: a model registry with typed configs, weights as data, and safe checkpoint loading.

The registry and weights records are importable without torch being imported; checkpoint
loading lives in :mod:`rem_models.checkpoints`.
"""

from rem_models.overrides import apply_overrides, override_config, parse_overrides
from rem_models.registry import (
    ModelConfig,
    ModelEntry,
    get_model,
    get_model_config,
    get_model_entry,
    get_weights,
    list_models,
    list_weights,
    parameter_count,
    register_model,
)
from rem_models.weights import Weights, fetch_weights

__all__ = [
    "ModelConfig",
    "ModelEntry",
    "Weights",
    "apply_overrides",
    "fetch_weights",
    "get_model",
    "get_model_config",
    "get_model_entry",
    "get_weights",
    "list_models",
    "list_weights",
    "override_config",
    "parameter_count",
    "parse_overrides",
    "register_model",
]
