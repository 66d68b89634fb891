"""`rem merge`: stage 2, merge COCO-fied LVIS annotations into a COCO file."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--coco-json", required=True, type=_PATH, help="COCO instances (stage-1 output).")
@click.option(
    "--lvis-json",
    required=True,
    multiple=True,
    type=_PATH,
    help="LVIS v1 instances; repeat for train and val (together they cover both COCO splits).",
)
@click.option("--split", required=True, type=click.Choice(["train", "val"]), help="COCO split.")
@click.option("--output", "-o", required=True, type=_PATH, help="Merged JSON to write.")
@click.option(
    "--not-exhaustive-filter/--no-not-exhaustive-filter",
    default=None,
    help="Drop LVIS groups whose category is not exhaustively annotated on the image "
    "[default: on for val, off for train, as in the reference].",
)
@click.option(
    "--id-scheme",
    type=click.Choice(["ref", "sequential"]),
    default="ref",
    show_default=True,
    help="ref: id = image_id*1000 + index within image (fails beyond 1000 per image); "
    "sequential: 1, 2, 3, ... in output order.",
)
@click.option(
    "--accounting",
    type=_PATH,
    default=None,
    help="Accounting JSON [default: beside --output, NAME.accounting.json].",
)
@click.option("--table/--no-table", default=False, help="Print the per-category accounting table.")
def merge(
    coco_json: Path,
    lvis_json: tuple[Path, ...],
    split: str,
    output: Path,
    not_exhaustive_filter: bool | None,
    id_scheme: str,
    accounting: Path | None,
    table: bool,
) -> None:
    """Merge LVIS into COCO per (image, category): LVIS wins when it has strictly more instances.

    Every output annotation is tagged with source ("coco"/"lvis"), source_id and iscrowd; an
    accounting JSON beside the output says what happened to every COCO annotation.
    """
    from rem_core.io import load_coco, save_json
    from rem_refine.accounting import accounting_path
    from rem_refine.merge import merge_lvis

    console = Console()
    coco = load_coco(coco_json)
    lvis = [load_coco(p) for p in lvis_json]
    merged, acc = merge_lvis(
        coco.dataset,
        [f.dataset for f in lvis],
        split,  # type: ignore[arg-type]
        not_exhaustive_filter=not_exhaustive_filter,
        id_scheme=id_scheme,  # type: ignore[arg-type]
        coco_path=coco_json,
        lvis_paths=list(lvis_json),
    )
    save_json(output, merged)
    report = acc.save(accounting or accounting_path(output))

    extra = acc.extra
    src = extra["from_source"]
    console.print(
        f"[bold]merged[/] {extra['images']} images, {extra['annotations']} annotations "
        f"({src['coco']} from COCO, {src['lvis']} from LVIS) -> {output}"
    )
    totals = acc.to_dict()["totals"]
    console.print(
        f"COCO: {totals['input']} in, {totals['kept']} kept, {totals['removed']} replaced; "
        f"LVIS: {extra['lvis']['annotations']} in, {extra['lvis']['taken']} taken"
    )
    for reason, n in extra["lvis"]["dropped"].items():
        console.print(f"  LVIS dropped, {reason}: {n}")
    if table:
        console.print(acc.table())
    console.print(f"accounting -> {report}")
