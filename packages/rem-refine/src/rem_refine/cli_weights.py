"""`rem weights`: list and download the official SAM / MobileSAM checkpoints."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rem_refine.weights import WEIGHTS, cached_path, download_weights, weights_dir


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def weights() -> None:
    """SAM checkpoints for `rem refine`: official URLs, sha256-checked, cached."""


@weights.command("list")
def list_weights() -> None:
    """Show every known checkpoint, its sha256 and whether it is in the cache."""
    console = Console()
    table = Table(title=f"rem weights (cache: {weights_dir()})")
    for col in ("name", "arch", "file", "sha256", "cached", "description"):
        table.add_column(col, overflow="fold")
    for info in WEIGHTS.values():
        path = cached_path(info.name)
        table.add_row(
            info.name,
            info.arch,
            info.filename,
            (info.sha256 or "trust on first use")[:16] + ("..." if info.sha256 else ""),
            "yes" if path.is_file() else "no",
            info.description,
        )
    console.print(table)


@weights.command("download")
@click.argument("name", type=click.Choice(sorted(WEIGHTS)))
@click.option(
    "--url", default=None, help="Fetch from this URL (a mirror) instead of the official one."
)
@click.option("--sha256", default=None, help="Expected sha256 [default: the registry's].")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to put the file in [default: the weights cache].",
)
@click.option("--force", is_flag=True, help="Download even if a verified file is present.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def download(
    name: str, url: str | None, sha256: str | None, dest: Path | None, force: bool, progress: bool
) -> None:
    """Download checkpoint NAME, verify its sha256 and print its path."""
    console = Console(stderr=True)
    path = download_weights(
        name, url=url, sha256=sha256, dest_dir=dest, force=force, progress=progress, console=console
    )
    click.echo(str(path))
