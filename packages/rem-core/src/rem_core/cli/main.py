"""The `rem` entry point.

Subcommands are declared by installed packages in the entry-point group ``rem.commands``. Running
one imports only its own module; `rem --help` imports each to show its summary, and lists a
package that fails to import as a broken command with its error instead of failing.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

import click

from rem_core import __version__
from rem_core.errors import RemError

ENTRY_POINT_GROUP = "rem.commands"


def _command_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _broken_command(name: str, ep: EntryPoint, exc: BaseException) -> click.Command:
    """A stand-in for a subcommand whose package fails to import: it says why and exits 2."""
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]

    @click.command(
        name=name,
        help=f"[broken] {ep.value} failed to load: {reason}",
        short_help=f"[broken] {reason}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def broken() -> None:
        click.echo(f"rem {name}: command is broken: {ep.value} failed to load: {reason}", err=True)
        sys.exit(2)

    return broken


class PluginGroup(click.Group):
    """A click group that finds its subcommands through entry points, loading them lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_command_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        ep = _command_entry_points().get(cmd_name)
        if ep is None:
            return None
        try:
            command = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            return _broken_command(cmd_name, ep, exc)
        if not isinstance(command, click.Command):
            return _broken_command(cmd_name, ep, TypeError(f"{ep.value} is not a click command"))
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help is the one place that imports every plugin, to show its summary; a plugin that
        # fails to import is listed as broken with its error instead of breaking `rem --help`.
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=formatter.width - 20)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RemError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rem")
def cli() -> None:
    """rem: refine, evaluate, train and look at instance-segmentation data."""


def main() -> None:
    cli(prog_name="rem")
