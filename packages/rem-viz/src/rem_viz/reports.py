"""HTML galleries for overlay runs and comparisons (see :mod:`rem_viz.gallery`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rem_viz.compare import Comparison, summarize_by_category, summarize_changes
from rem_viz.gallery import Card, SortOption, write_gallery
from rem_viz.instances import AnnotationSet
from rem_viz.overlays import RenderSummary

MAX_LISTED = 50


def _listing(label: str, items: Sequence[str]) -> list[str]:
    if not items:
        return []
    shown = ", ".join(items[:MAX_LISTED])
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return [f"{label} ({len(items)}): {shown}{more}"]


def _iou(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def overlay_report(
    summary: RenderSummary,
    aset: AnnotationSet,
    *,
    title: str,
    path: str | Path | None = None,
    embed: bool = False,
) -> Path:
    """The gallery of an overlay run, written to ``output/index.html`` (or ``path``)."""
    out = summary.output
    path = Path(path) if path is not None else out / "index.html"
    names = aset.names
    cards = []
    for written, outcome in zip(summary.written, summary.outcomes):
        record = aset.images[outcome.image_id]
        rel = Path(os.path.relpath(written, path.parent)).as_posix()
        thumb = Path(os.path.relpath(written.parent / "thumbs" / written.name, path.parent))
        cats = [names.get(c, str(c)) for c, _ in outcome.category_counts]
        cards.append(
            Card(
                key=str(outcome.image_id),
                title=str(record.get("file_name") or written.name),
                subtitle=f"image {outcome.image_id} \u00b7 {outcome.drawn} instances",
                thumb=thumb.as_posix() if (path.parent / thumb).is_file() else rel,
                full=rel,
                categories=cats,
                sort={"instances": outcome.drawn, "image_id": outcome.image_id},
                category_sort={names.get(c, str(c)): n for c, n in outcome.category_counts},
                rows=[[names.get(c, str(c)), str(n)] for c, n in outcome.category_counts],
            )
        )
    notes = _listing("images missing from the image folder, skipped", summary.missing)
    notes += _listing("images not drawn", [f"{n} ({why})" for n, why in summary.failed])
    if summary.bad_instances:
        notes.append(f"{len(summary.bad_instances)} instances with unreadable masks were skipped")
    kind = "detections" if aset.kind == "detections" else "instances"
    return write_gallery(
        path,
        title=title,
        subtitle=f"{len(cards)} images, {summary.instances_drawn} {kind} drawn",
        cards=cards,
        sorts=[
            SortOption("instances", "most instances", True, per_category=True),
            SortOption("image_id", "image id", False),
        ],
        columns=["category", "instances"],
        category_ids={v: k for k, v in names.items()},
        notes=notes,
        embed=embed,
    )


CATEGORY_COLUMNS = [
    "category",
    "instances A",
    "instances B",
    "matched",
    "added",
    "removed",
    "mean mask IoU",
    "mean boundary IoU",
    "pixels added",
    "pixels removed",
    "changed",
]


def category_rows(rows: Sequence[dict]) -> list[list[str]]:
    """Summary rows (from :func:`summarize_by_category`) as table cells, most changed first."""
    ordered = sorted(rows, key=lambda r: (-r["changed_fraction"], str(r["category"]).casefold()))
    return [
        [
            str(r["category"]),
            str(r["instances_a"]),
            str(r["instances_b"]),
            str(r["matched"]),
            str(r["added"]),
            str(r["removed"]),
            _iou(r["mean_mask_iou"]),
            _iou(r["mean_boundary_iou"]),
            str(r["pixels_added"]),
            str(r["pixels_removed"]),
            _pct(r["changed_fraction"]),
        ]
        for r in ordered
    ]


def comparison_report(
    comparison: Comparison,
    out_dir: str | Path,
    *,
    title: str | None = None,
    figures: Sequence[tuple[str, str]] = (),
    embed: bool = False,
) -> Path:
    """The gallery of a comparison, written to ``out_dir/index.html``.

    Cards are the drawn images (A | B | difference when enlarged), sortable by biggest change
    (of the filtered category when a filter is on) or lowest mask IoU.
    """
    out = Path(out_dir)
    names = comparison.names
    cards = []
    for img in comparison.images:
        if img.composite is None:
            continue
        totals = summarize_changes(img.changes)
        per_cat = summarize_by_category(img.changes, names)
        ious = [c.mask_iou for c in img.changes if c.mask_iou is not None]
        cards.append(
            Card(
                key=str(img.image_id),
                title=img.file_name,
                subtitle=(
                    f"image {img.image_id} \u00b7 {totals['matched']} matched \u00b7 "
                    f"{totals['added']} added \u00b7 {totals['removed']} removed"
                ),
                badge=f"{_pct(totals['changed_fraction'])} changed",
                thumb=img.thumb,
                full=img.composite,
                categories=sorted({r["category"] for r in per_cat}, key=str.casefold),
                sort={
                    "change": totals["changed_fraction"],
                    "min_iou": min(ious) if ious else None,
                    "instances": len(img.changes),
                    "image_id": img.image_id,
                },
                category_sort={r["category"]: r["changed_fraction"] for r in per_cat},
                rows=[
                    [
                        names.get(c.category_id, str(c.category_id)),
                        "" if c.ann_id_a is None else str(c.ann_id_a),
                        "" if c.ann_id_b is None else str(c.ann_id_b),
                        c.status,
                        _iou(c.mask_iou),
                        _iou(c.boundary_iou),
                        str(c.area_a),
                        str(c.area_b),
                        str(c.added_px),
                        str(c.removed_px),
                    ]
                    for c in img.changes
                ],
            )
        )
    overall = summarize_changes(comparison.changes)
    notes = _listing("images missing from the image folder, not drawn", comparison.missing)
    notes += _listing(
        "images not drawn",
        [f"{i.file_name} ({i.failure})" for i in comparison.images if i.failure],
    )
    notes += _listing("images only in A, not compared", [str(i) for i in comparison.only_in_a])
    notes += _listing("images only in B, not compared", [str(i) for i in comparison.only_in_b])
    notes += _listing(
        "images whose size differs between A and B, not compared",
        [str(i) for i in comparison.size_mismatch],
    )
    if comparison.problems:
        notes.append(f"{len(comparison.problems)} instances with unreadable masks were skipped")
    mean_iou = overall["mean_mask_iou"]
    subtitle = (
        f"A = {comparison.name_a}, B = {comparison.name_b}: {len(comparison.images)} images, "
        f"{overall['matched']} matched, {overall['added']} added, {overall['removed']} removed"
        + ("" if mean_iou is None else f", mean mask IoU {mean_iou:.3f}")
        + f", {_pct(overall['changed_fraction'])} of mask pixels changed"
    )
    return write_gallery(
        out / "index.html",
        title=title or f"{comparison.name_a} vs {comparison.name_b}",
        subtitle=subtitle,
        cards=cards,
        sorts=[
            SortOption("change", "biggest change", True, per_category=True),
            SortOption("min_iou", "lowest mask IoU", False),
            SortOption("instances", "most instances", True),
            SortOption("image_id", "image id", False),
        ],
        columns=[
            "category",
            "id A",
            "id B",
            "status",
            "mask IoU",
            "boundary IoU",
            "area A",
            "area B",
            "added",
            "removed",
        ],
        category_ids={v: k for k, v in names.items()},
        summary=(CATEGORY_COLUMNS, category_rows(comparison.categories())),
        figures=figures,
        notes=notes,
        embed=embed,
    )
