"""`rem cocofy-lvis LVIS_JSON OUT`: LVIS restricted to the 80 COCO categories (COCO ids)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="cocofy-lvis")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def cocofy_lvis(source: Path, dest: Path) -> None:
    """Write LVIS SOURCE restricted to the COCO categories to DEST.

    The result carries COCO category ids, so a COCO model's predictions score with
    `rem eval DEST RESULTS --lvis` (AggMask's LVIS AP*).
    """
    from rem_core.errors import RemError
    from rem_core.io import read_json, save_json
    from rem_models.solo.lvis_cocofied import cocofy_lvis as convert

    data = read_json(source)
    if not isinstance(data, dict):
        raise RemError("expected an LVIS dataset object", path=source)
    try:
        out = convert(data)
    except RemError as exc:
        raise RemError(exc.detail, path=source, where=exc.where) from None
    save_json(dest, out)
    click.echo(
        f"wrote {dest}: {len(out['images'])} images, {len(out['annotations'])} annotations, "
        f"{len(out['categories'])} COCO categories"
    )
