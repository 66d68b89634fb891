"""`rem find-duplicates`: propose same-image instance pairs with high mask IoU for review."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command("find-duplicates")
@click.option("--input", "input_json", required=True, type=_PATH, help="Instances JSON.")
@click.option("--output", "-o", required=True, type=_PATH, help="Draft corrections JSON.")
@click.option(
    "--iou",
    "threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.8,
    show_default=True,
    help="Report pairs with mask IoU strictly above this.",
)
@click.option("--same-category", is_flag=True, help="Only pairs of the same category.")
@click.option("--include-crowd", is_flag=True, help="Compare crowd annotations too.")
def find_duplicates(
    input_json: Path, output: Path, threshold: float, same_category: bool, include_crowd: bool
) -> None:
    """Write a DRAFT corrections file proposing to remove the later annotation of each pair.

    Review it (edit or delete entries), set "draft": false, then run `rem correct`.
    """
    from rich.progress import track

    from rem_core.io import load_coco, save_json
    from rem_refine import duplicates

    console = Console()
    data = load_coco(input_json)
    search = duplicates.find_duplicates(
        data.dataset,
        threshold=threshold,
        same_category=same_category,
        include_crowd=include_crowd,
        path=input_json,
        track=lambda it, total: track(
            it, total=total, description="comparing masks", console=console, transient=True
        ),
    )
    draft = duplicates.draft_corrections(search, data.categories)
    save_json(output, draft.model_dump(mode="json"))
    console.print(
        f"[bold]{len(search.pairs)} pairs[/] with IoU > {threshold} on {search.images} images "
        f"({search.annotations_compared} annotations compared); "
        f"{len(draft.remove)} removals proposed -> {output}"
    )
    for reason, n in sorted(search.skipped.items()):
        console.print(f"  skipped, {reason}: {n}")
