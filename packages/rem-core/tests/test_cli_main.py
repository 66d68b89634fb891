"""The `rem` group: plugin discovery, lazy loading, broken plugins, user errors."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import click
import pytest
from click.testing import CliRunner

from rem_core.cli import main as cli_main
from rem_core.errors import RemError


@pytest.fixture
def plugins(monkeypatch):
    """Replace the installed entry points with test ones; returns the dict to fill."""
    table: dict[str, EntryPoint] = {}
    monkeypatch.setattr(cli_main, "_command_entry_points", lambda: dict(table))
    return table


def _add_module(monkeypatch, name: str, **attrs) -> None:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=cli_main.ENTRY_POINT_GROUP)


def test_help_lists_plugins_and_marks_broken_ones(plugins, monkeypatch):
    @click.command(help="Say hello.")
    def hello() -> None:
        click.echo("hello")

    _add_module(monkeypatch, "rem_test_plugin_ok", hello=hello)
    plugins["hello"] = _ep("hello", "rem_test_plugin_ok:hello")
    plugins["broken"] = _ep("broken", "rem_test_plugin_missing_module:cmd")

    result = CliRunner().invoke(cli_main.cli, ["--help"])
    assert result.exit_code == 0
    assert "hello" in result.output and "Say hello." in result.output
    assert "broken" in result.output and "[broken] ModuleNotFoundError" in result.output


def test_broken_plugin_exits_2_with_its_error(plugins):
    plugins["broken"] = _ep("broken", "rem_test_plugin_missing_module:cmd")
    result = CliRunner().invoke(cli_main.cli, ["broken", "--anything"])
    assert result.exit_code == 2
    assert "rem_test_plugin_missing_module" in result.output
    assert "Traceback" not in result.output


def test_running_one_command_does_not_import_the_others(plugins, monkeypatch):
    @click.command()
    def ping() -> None:
        click.echo("pong")

    _add_module(monkeypatch, "rem_test_plugin_ping", ping=ping)
    plugins["ping"] = _ep("ping", "rem_test_plugin_ping:ping")
    plugins["other"] = _ep("other", "rem_test_plugin_never_imported:cmd")

    result = CliRunner().invoke(cli_main.cli, ["ping"])
    assert result.exit_code == 0 and result.output == "pong\n"
    assert "rem_test_plugin_never_imported" not in sys.modules


def test_non_command_entry_point_is_reported_broken(plugins, monkeypatch):
    _add_module(monkeypatch, "rem_test_plugin_notcmd", thing=42)
    plugins["thing"] = _ep("thing", "rem_test_plugin_notcmd:thing")
    result = CliRunner().invoke(cli_main.cli, ["thing"])
    assert result.exit_code == 2
    assert "is not a click command" in result.output


def test_rem_error_is_one_line_and_exit_2(plugins, monkeypatch):
    @click.command()
    def fail() -> None:
        raise RemError("must be >= 0", path="data.json", where="annotations[3].area")

    _add_module(monkeypatch, "rem_test_plugin_fail", fail=fail)
    plugins["fail"] = _ep("fail", "rem_test_plugin_fail:fail")
    result = CliRunner().invoke(cli_main.cli, ["fail"])
    assert result.exit_code == 2
    assert result.output == "error: data.json: annotations[3].area: must be >= 0\n"


def test_version():
    from rem_core import __version__

    result = CliRunner().invoke(cli_main.cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rem, version {__version__}"
