"""`rem convert-checkpoint MODEL IN OUT`: released weights -> rem safetensors with config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="convert-checkpoint")
@click.argument("model")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "file_format",
    default=None,
    type=click.Choice(["detectron2-pkl", "torch", "safetensors", "mmcv"]),
    help="Format of SOURCE (default: from its name or contents).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a model config field (e.g. num_classes=1203). Repeatable.",
)
@click.option(
    "--categories",
    "categories_file",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO file whose categories (sorted by id) are the model's classes; "
    "default: the 80 COCO categories for an 80-class model.",
)
def convert_checkpoint(
    model: str,
    source: Path,
    dest: Path,
    file_format: str | None,
    overrides: tuple[str, ...],
    categories_file: Path | None,
) -> None:
    """Convert an official MODEL checkpoint SOURCE into a rem checkpoint DEST."""
    from rem_models.engine.convert import convert_checkpoint_file

    path = convert_checkpoint_file(
        model,
        source,
        dest,
        file_format=file_format,  # type: ignore[arg-type]
        overrides=overrides,
        categories_file=categories_file,
    )
    click.echo(f"wrote {path}")
