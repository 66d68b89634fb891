"""`rem validate`: check COCO / LVIS / results files; one line per problem, exit 2 if any."""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError
from rem_core.io import load_coco
from rem_core.validate import validate_file


@click.command()
@click.argument(
    "files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--kind",
    type=click.Choice(["coco", "lvis", "results"]),
    help="What the files are (default: guessed; a JSON list is a results file).",
)
@click.option(
    "--gt",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ground-truth instances file: results must name its images and categories, and RLE "
    "sizes must match its images.",
)
@click.option(
    "--image-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also check that every image file exists in this directory.",
)
@click.option(
    "--max-errors",
    default=200,
    show_default=True,
    help="Errors printed per file (0: all); all are counted.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    files: tuple[Path, ...],
    kind: str | None,
    gt: Path | None,
    image_dir: Path | None,
    max_errors: int,
) -> None:
    """Check files and print each error as `FILE: WHERE: message`; exit 2 if there are any.

    Errors: malformed JSON (line, column); NaN / Infinity; schema violations (JSON path such as
    annotations[12].bbox); duplicate image / annotation / category ids; annotations naming a
    missing image or category; polygons with fewer than 3 points or an odd number of
    coordinates; RLE whose size differs from its image's (height, width); negative box sizes;
    image file names that are absolute or contain '..'. Warnings (counts, exit 0): images
    without annotations, annotations without iscrowd (LVIS), uncompressed RLE.
    """
    gt_file = load_coco(gt) if gt is not None else None
    failed = False
    for path in files:
        try:
            report = validate_file(path, kind=kind, gt=gt_file, image_dir=image_dir)
        except RemError as exc:  # unreadable file: report it and go on with the others
            click.echo(f"error: {exc}")
            failed = True
            continue
        if gt_file is not None and report.kind != "results":
            raise click.UsageError(f"--gt applies to results files; {path} is a {report.kind} file")
        for line in report.lines(max_errors or None):
            click.echo(line)
        failed = failed or not report.ok
    if failed:
        ctx.exit(2)
