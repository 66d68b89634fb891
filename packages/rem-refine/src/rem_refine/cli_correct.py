"""`rem correct`: stage 3, apply a reviewed corrections file (removals, crowd flags, additions)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--input", "input_json", required=True, type=_PATH, help="Merged instances JSON.")
@click.option("--corrections", required=True, type=_PATH, help="Corrections JSON to apply.")
@click.option("--output", "-o", required=True, type=_PATH, help="Corrected JSON to write.")
@click.option(
    "--strict/--no-strict",
    default=False,
    help="Fail when a removal or crowd entry matches no annotation [default: report only].",
)
@click.option(
    "--allow-draft",
    is_flag=True,
    help="Apply a file still marked draft (as written by `rem find-duplicates`).",
)
@click.option(
    "--id-base",
    type=int,
    default=2024000000,
    show_default=True,
    help="Id of the first addition; the i-th addition gets id-base + i.",
)
@click.option(
    "--accounting",
    type=_PATH,
    default=None,
    help="Accounting JSON [default: beside --output, NAME.accounting.json].",
)
@click.option("--table/--no-table", default=False, help="Print the per-category accounting table.")
def correct(
    input_json: Path,
    corrections: Path,
    output: Path,
    strict: bool,
    allow_draft: bool,
    id_base: int,
    accounting: Path | None,
    table: bool,
) -> None:
    """Apply removals, then crowd flags, then additions, matching (image_id, source, source_id).

    Entries that match nothing are counted in the report (and fail with --strict).
    """
    from rem_core.errors import RemError
    from rem_core.io import load_coco, save_json
    from rem_refine.accounting import accounting_path
    from rem_refine.correct import apply_corrections
    from rem_refine.corrections import load_corrections

    console = Console()
    fixes = load_corrections(corrections)
    if fixes.draft and not allow_draft:
        raise RemError(
            'is a draft; review it and set "draft": false, or pass --allow-draft',
            path=corrections,
            where="draft",
        )
    data = load_coco(input_json)
    out, acc = apply_corrections(
        data.dataset,
        fixes,
        strict=strict,
        id_base=id_base,
        path=input_json,
        corrections_path=corrections,
    )
    save_json(output, out)
    report = acc.save(accounting or accounting_path(output))

    rep = acc.extra["corrections"]
    console.print(
        f"[bold]corrected[/] {len(data.annotations)} -> {len(out['annotations'])} annotations "
        f"-> {output}"
    )
    console.print(
        f"remove: {rep['remove']['matched']}/{rep['remove']['listed']} entries matched, "
        f"{rep['remove']['annotations_removed']} annotations removed"
    )
    console.print(
        f"crowd: {rep['crowd']['matched']}/{rep['crowd']['listed']} entries matched, "
        f"{rep['crowd']['annotations_flagged']} annotations flagged"
    )
    console.print(f"add: {rep['add']['added']} annotations added")
    unmatched = len(rep["remove"]["unmatched"]) + len(rep["crowd"]["unmatched"])
    if unmatched:
        console.print(f"[yellow]warning:[/] {unmatched} entries matched nothing (see {report})")
    if table:
        console.print(acc.table())
    console.print(f"accounting -> {report}")
