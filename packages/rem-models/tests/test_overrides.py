"""`--set key=value` parsing and application onto pydantic configs."""

from __future__ import annotations

import pytest

from rem_core.errors import RemError
from rem_models import apply_overrides, override_config, parse_overrides


def test_parse_values_as_json_else_string():
    parsed = parse_overrides(
        ["a=2", "b=0.5", "c=true", "d=[2, 5]", "e=null", "f=vit", 'g="7"', "h=", "i=x=y"]
    )
    assert parsed == {
        "a": 2,
        "b": 0.5,
        "c": True,
        "d": [2, 5],
        "e": None,
        "f": "vit",
        "g": "7",
        "h": "",
        "i": "x=y",
    }


def test_parse_later_item_wins():
    assert parse_overrides(["a=1", "a=2"]) == {"a": 2}


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_parse_rejects_items_without_key(item):
    with pytest.raises(RemError, match="expected KEY=VALUE"):
        parse_overrides([item])


def test_apply_top_level_nested_and_dict_fields(toy):
    base = toy.MLPConfig()
    out = apply_overrides(base, ["hidden=4", "head.out_dim=2", "head.bias=false", "tags.lr=0.1"])
    assert out == toy.MLPConfig(
        hidden=4, head=toy.HeadConfig(out_dim=2, bias=False), tags={"lr": 0.1}
    )
    assert base == toy.MLPConfig()  # the input is not modified


def test_apply_validates_types(toy):
    # pydantic's lax mode turns "5" into 5; a word cannot become an int.
    assert apply_overrides(toy.MLPConfig(), ['hidden="5"']).hidden == 5
    with pytest.raises(RemError) as info:
        apply_overrides(toy.MLPConfig(), ["head.out_dim=many"])
    assert "head.out_dim" in str(info.value)
    assert "integer" in str(info.value)


def test_unknown_top_level_key_lists_valid_keys(toy):
    with pytest.raises(RemError) as info:
        apply_overrides(toy.MLPConfig(), ["depth=3"])
    assert str(info.value) == (
        "--set: unknown config key 'depth': no field 'depth'; "
        "valid keys: head, hidden, in_dim, tags"
    )


def test_unknown_nested_key_lists_nested_valid_keys(toy):
    with pytest.raises(RemError) as info:
        apply_overrides(toy.MLPConfig(), ["head.outdim=3"])
    assert str(info.value) == (
        "--set: unknown config key 'head.outdim': no field 'outdim' under 'head'; "
        "valid keys under 'head': bias, out_dim"
    )


def test_sub_key_of_a_scalar_is_refused(toy):
    with pytest.raises(RemError, match="'hidden' is a int, it has no sub-keys"):
        apply_overrides(toy.MLPConfig(), ["hidden.x=3"])


def test_mapping_override_merges_into_nested_config(toy):
    out = override_config(toy.MLPConfig(), {"head": {"out_dim": 9}})
    assert out.head == toy.HeadConfig(out_dim=9, bias=True)
    # ...but replaces a plain dict field.
    base = toy.MLPConfig(tags={"a": 1.0})
    assert override_config(base, {"tags": {"b": 2.0}}).tags == {"b": 2.0}
