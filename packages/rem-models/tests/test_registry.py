"""Registry behaviour with throwaway architectures registered inside the tests."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from rem_core.errors import RemError
from rem_models import (
    ModelConfig,
    Weights,
    get_model,
    get_model_config,
    get_model_entry,
    get_weights,
    list_models,
    list_weights,
    parameter_count,
    register_model,
    registry,
)


def test_list_models_sorted_and_glob(tiny_models):
    assert list_models() == ["mlp-tiny", "mlp-wide"]
    assert list_models("*-wide") == ["mlp-wide"]
    assert list_models("vitdet-*") == []


def test_get_model_builds_from_annotation_defaults(tiny_models, toy):
    model = get_model("mlp-tiny")
    assert isinstance(model, toy.MLP)
    assert model.fc1.weight.shape == (16, 8)  # nn.Linear stores (out, in)
    assert model.fc2.weight.shape == (3, 16)
    assert model(torch.zeros(5, 8)).shape == (5, 3)


def test_get_model_overrides_top_level_and_nested(tiny_models, toy):
    model = get_model("mlp-wide", hidden=4, head={"out_dim": 2})
    assert model.fc1.weight.shape == (4, 8)
    assert model.fc2.weight.shape == (2, 4)
    assert model.fc2.bias is not None  # the nested override kept head.bias
    # Dotted keys cannot be keywords, but the same merge accepts them through a dict.
    model = get_model("mlp-wide", **{"head.bias": False})
    assert model.fc2.bias is None


def test_get_model_with_config_object(tiny_models, toy):
    model = get_model("mlp-tiny", toy.MLPConfig(in_dim=2, hidden=3), hidden=5)
    assert model.fc1.weight.shape == (5, 2)

    class OtherConfig(ModelConfig):
        x: int = 1

    with pytest.raises(RemError, match="takes a MLPConfig, got a OtherConfig"):
        get_model("mlp-tiny", OtherConfig())


def test_get_model_config_is_a_copy(tiny_models, toy):
    config = get_model_config("mlp-wide")
    assert config == toy.MLPConfig(hidden=64)
    config.hidden = 1
    config.tags["x"] = 1.0
    assert get_model_config("mlp-wide") == toy.MLPConfig(hidden=64)
    assert get_model_config("mlp-wide", hidden=7).hidden == 7


def test_unknown_override_names_key_and_valid_keys(tiny_models):
    with pytest.raises(RemError) as info:
        get_model("mlp-tiny", hiden=4)
    message = str(info.value)
    assert "unknown config key 'hiden'" in message
    assert "valid keys: head, hidden, in_dim, tags" in message


def test_bad_override_value_is_a_rem_error(tiny_models):
    with pytest.raises(RemError, match=r"invalid MLPConfig override: hidden: .*integer"):
        get_model("mlp-tiny", hidden="wide")


def test_config_forbids_extra_fields(toy):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        toy.MLPConfig(hiddn=3)


def test_parameter_count_on_meta_device(tiny_models, toy):
    assert parameter_count("mlp-tiny") == toy.mlp_params(8, 16, 3) == 195
    assert parameter_count("mlp-wide") == toy.mlp_params(8, 64, 3)
    assert parameter_count("mlp-wide", hidden=2, head={"bias": False}) == toy.mlp_params(
        8, 2, 3, bias=False
    )
    # Built on the meta device: the count must agree with a real build.
    assert parameter_count("mlp-tiny") == sum(p.numel() for p in get_model("mlp-tiny").parameters())


def test_parameter_count_allocates_nothing(empty_registry):
    class BigConfig(ModelConfig):
        side: int = 200_000

    @register_model("big", config=BigConfig())
    def big(config: BigConfig) -> nn.Module:
        return nn.Linear(config.side, config.side)  # 40 G parameters: 160 GB if materialised

    assert parameter_count("big") == 200_000 * 200_000 + 200_000


def test_unknown_model_suggests_close_names(tiny_models):
    with pytest.raises(RemError, match="unknown model 'mlp-tiy'; did you mean mlp-tiny"):
        get_model("mlp-tiy")
    with pytest.raises(RemError, match="known: mlp-tiny, mlp-wide"):
        get_model_entry("resnet")


def test_unknown_model_in_empty_registry(empty_registry):
    with pytest.raises(RemError, match="none are registered"):
        get_model("anything")


def test_weights_lookup(tiny_models, toy):
    assert list_weights("mlp-tiny") == [toy.weights]
    assert list_weights("mlp-wide") == []
    weights = get_weights("mlp-tiny", "toy-v1")
    assert weights.file_name == "model_final_000000.pkl"
    assert weights.metrics == {"toy/ap": 12.5}
    with pytest.raises(RemError, match="unknown weights for model 'mlp-tiny': 'toy-v2'"):
        get_weights("mlp-tiny", "toy-v2")


def test_summary_is_first_docstring_line(tiny_models):
    assert get_model_entry("mlp-tiny").summary == "A two-layer MLP for tests."


def test_register_twice_is_refused(tiny_models, toy):
    with pytest.raises(ValueError, match="already registered"):

        @register_model("mlp-tiny")
        def again(config: toy.MLPConfig) -> nn.Module:
            return toy.MLP(config)


def test_register_without_config_or_annotation_is_refused(empty_registry):
    with pytest.raises(TypeError, match="annotate the builder's first parameter"):

        @register_model("bare")
        def bare(config):
            return nn.Identity()


def test_register_with_unresolvable_annotation_is_refused(empty_registry, toy):
    class LocalConfig(ModelConfig):
        pass

    # This module uses `from __future__ import annotations`, so the annotation is the string
    # "LocalConfig", which names a class local to this function.
    with pytest.raises(TypeError, match="cannot resolve the builder's annotations"):

        @register_model("local")
        def local(config: LocalConfig) -> nn.Module:
            return nn.Identity()


def test_register_duplicate_weights_names_is_refused(empty_registry, toy):
    with pytest.raises(ValueError, match=r"duplicate weights names \['toy-v1'\]"):

        @register_model("dup", config=toy.MLPConfig(), weights=[toy.weights, toy.weights])
        def dup(config: toy.MLPConfig) -> nn.Module:
            return toy.MLP(config)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sha256", "abc", "64 hexadecimal digits"),
        ("url", "ftp://host/file.pkl", "http"),
        ("file_format", "onnx", "detectron2-pkl"),
        ("num_params", -1, "greater than or equal to 0"),
        ("name", "has space", "pattern"),
    ],
)
def test_weights_record_validation(toy, field, value, message):
    data = toy.weights.model_dump()
    data[field] = value
    with pytest.raises(ValidationError, match=message):
        Weights(**data)


def test_weights_sha256_is_normalised_to_lowercase(toy):
    data = toy.weights.model_dump() | {"sha256": "AB" * 32}
    assert Weights(**data).sha256 == "ab" * 32


def test_family_modules_are_imported_on_first_query(empty_registry, monkeypatch, tmp_path):
    module = "rem_models_test_family_abc"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from rem_models import ModelConfig, register_model

            class IdConfig(ModelConfig):
                pass

            @register_model("identity-test")
            def identity(config: IdConfig) -> nn.Module:
                return nn.Identity()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_FAMILY_MODULES", (module,))
    monkeypatch.setattr(registry, "_families_loaded", False)
    try:
        assert module not in sys.modules
        assert list_models() == ["identity-test"]
        assert module in sys.modules
        assert parameter_count("identity-test") == 0
    finally:
        sys.modules.pop(module, None)


def test_broken_family_module_fails_every_time(empty_registry, monkeypatch):
    monkeypatch.setattr(registry, "_FAMILY_MODULES", ("rem_models_no_such_family_xyz",))
    monkeypatch.setattr(registry, "_families_loaded", False)
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="rem_models_no_such_family_xyz"):
            list_models()
