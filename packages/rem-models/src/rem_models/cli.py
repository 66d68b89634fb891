"""`rem models`: what architectures and weights are registered, and what they contain.

Parameter counts are computed by building each architecture on the meta device, so listing
even billion-parameter models takes no memory and no initialisation time.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _human(count: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _count_or_reason(name: str, config: Any = None) -> tuple[int | None, str | None]:
    """Parameter count of ``name``, or why it could not be built on the meta device."""
    from rem_models.registry import parameter_count

    try:
        return parameter_count(name, config), None
    except Exception as exc:  # one broken builder must not hide the rest of the listing
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


@click.group(name="models")
def models() -> None:
    """List and inspect the registered model architectures and their pretrained weights."""


@models.command(name="list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_command(pattern: str | None, as_json: bool) -> None:
    """List registered architectures (PATTERN is a glob such as 'vitdet-*')."""
    from rich.console import Console
    from rich.table import Table

    from rem_models.registry import get_model_entry, list_models

    names = list_models(pattern)
    rows = []
    for name in names:
        entry = get_model_entry(name)
        count, reason = _count_or_reason(name)
        rows.append(
            {
                "name": name,
                "config": type(entry.config).__name__,
                "params": count,
                "error": reason,
                "weights": [w.name for w in entry.weights],
                "summary": entry.summary,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    if not rows:
        if pattern and list_models():
            console.print(f"no registered model matches {pattern!r}")
        else:
            console.print("no models registered yet")
        return
    table = Table(title="registered models")
    table.add_column("name", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("config")
    table.add_column("weights")
    table.add_column("summary")
    for row in rows:
        params = _human(row["params"]) if row["params"] is not None else f"n/a ({row['error']})"
        table.add_row(
            row["name"], params, row["config"], ", ".join(row["weights"]) or "-", row["summary"]
        )
    console.print(table)


@models.command(name="info")
@click.argument("name")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (dotted keys, JSON values), e.g. --set depth=2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def info_command(name: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the config, parameter count and published weights of architecture NAME."""
    from rich.console import Console
    from rich.markup import escape

    from rem_models.overrides import apply_overrides
    from rem_models.registry import get_model_entry

    entry = get_model_entry(name)
    config = apply_overrides(entry.config, overrides)
    count, reason = _count_or_reason(name, config)
    weights = [w.model_dump(mode="json") for w in entry.weights]
    if as_json:
        payload = {
            "name": name,
            "summary": entry.summary,
            "config_class": type(config).__name__,
            "config": config.model_dump(mode="json"),
            "params": count,
            "error": reason,
            "weights": weights,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(f"[bold]{name}[/bold]  {entry.summary}")
    if count is None:
        params = f"n/a ({reason})"
    else:
        params = f"{count:,}" + (f" ({_human(count)})" if count >= 1000 else "")
    console.print(f"parameters: {params}")
    console.print(f"config ({type(config).__name__}):")
    console.print_json(config.model_dump_json())
    if not entry.weights:
        console.print("weights: none published")
        return
    console.print("weights:")
    for w in entry.weights:
        params = f"{w.num_params:,} params" if w.num_params is not None else "params unknown"
        console.print(f"  [bold]{escape(w.name)}[/bold]  {w.file_format}  {params}")
        metrics = ", ".join(f"{k} {v:g}" for k, v in w.metrics.items()) or "-"
        # soft_wrap: long URLs and hashes stay on one line, so they can be copied.
        for label, value in (
            ("url", w.url),
            ("sha256", w.sha256 or "(not published: recorded on first download)"),
            ("metrics", metrics),
            ("recipe", w.recipe or "-"),
            ("source", w.source or "-"),
        ):
            console.print(f"    {label}: {escape(value)}", soft_wrap=True)
