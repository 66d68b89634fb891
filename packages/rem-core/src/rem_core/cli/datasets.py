"""`rem datasets`: list known datasets, download their annotations, print their paths."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rem_core import datasets as registry

_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Datasets root (default: ${registry.ROOT_ENV}, else ./{registry.DEFAULT_ROOT}).",
)


def _status(path: Path) -> Text:
    return (
        Text("present", style="green")
        if registry.is_present(path)
        else Text("missing", style="red")
    )


@click.group()
def datasets() -> None:
    """Known datasets (COCO, COCO-ReM, LVIS, RefCOCO*, VOC+SBD) under one root."""


@datasets.command("list")
@_root_option
def list_datasets(root: Path | None) -> None:
    """Show the known datasets and which of their files are present."""
    base = registry.datasets_root(root)
    table = Table(title=f"datasets under {base}")
    table.add_column("dataset", max_width=20)
    table.add_column("status", no_wrap=True)
    table.add_column("path (relative to the root)", overflow="fold", min_width=40)
    for name, dataset in registry.DATASETS.items():
        paths = registry.resolve(name, base)
        rows = [
            (rel, path)
            for rel, path in zip(dataset.annotations.values(), paths.annotations.values())
        ]
        rows.append((f"{dataset.image_dir}/ (images)", paths.image_dir))
        labels = [Text(name, style="bold"), Text(dataset.description, style="dim")]
        for i, (rel, path) in enumerate(rows):
            table.add_row(
                labels[i] if i < len(labels) else "",
                _status(path),
                rel,
                end_section=i == len(rows) - 1,
            )
    Console().print(table)


@datasets.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_root_option
@click.option("--force", is_flag=True, help="Download and unpack again even when present.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def download_datasets(
    names: tuple[str, ...], root: Path | None, force: bool, no_progress: bool
) -> None:
    """Download and unpack the annotation files of each NAME (not the images).

    Archives are verified (published sha256, else the hash recorded on their first download) and
    kept in $REM_CACHE_DIR/downloads (default ~/.cache/rem/downloads), so an interrupted download
    resumes. $REM_DATASETS_MIRROR=URL fetches every archive from URL/<file name> instead.
    """
    for name in names:
        registry.get(name)  # fail on a typo before any download starts
    log = Console(stderr=True)
    for name in names:
        paths = registry.download_dataset(
            name, root, force=force, progress=not no_progress, console=log
        )
        click.echo(f"{name}: annotations ready")
        for role, path in paths.annotations.items():
            click.echo(f"  {role}: {path}")
        if registry.is_present(paths.image_dir):
            click.echo(f"  images: {paths.image_dir}")
        else:
            hint = registry.get(name).images_hint
            click.echo(f"  images: not downloaded; put them in {paths.image_dir} (from {hint})")


@datasets.command("path")
@click.argument("name")
@_root_option
@click.option("--images", "what", flag_value="images", help="Print the image folder.")
@click.option("--all", "what", flag_value="all", help="Print every path as ROLE: PATH.")
def dataset_path(name: str, root: Path | None, what: str | None) -> None:
    """Print the paths of NAME: its main annotation file, image folder or all paths."""
    paths = registry.resolve(name, root)
    if what == "images":
        click.echo(str(paths.image_dir))
    elif what == "all":
        for role, path in paths.annotations.items():
            click.echo(f"{role}: {path}")
        click.echo(f"images: {paths.image_dir}")
    else:
        click.echo(str(paths.annotation))
    missing = paths.missing() + ([] if registry.is_present(paths.image_dir) else [paths.image_dir])
    if missing:
        click.echo(
            f"warning: {len(missing)} path(s) of {name} are missing; "
            f"see `rem datasets list` or run `rem datasets download {name}`",
            err=True,
        )
