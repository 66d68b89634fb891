"""`rem info`: what a COCO / LVIS / results file holds, at a glance or as JSON."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from rem_core.errors import RemError
from rem_core.io import (
    CocoFile,
    detect_kind,
    dumps_json,
    gc_paused,
    iscrowd,
    read_json,
    segmentation_kind,
)

# COCO's evaluation area ranges (pixels): small < 32^2 <= medium < 96^2 <= large. (COCOeval's
# ranges are closed at both ends, so an area of exactly 32^2 counts in both there.)
COCO_AREA_RANGES = (
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, math.inf),
)
# Finer bins on sqrt(area), i.e. the side of a square of the same area, in pixels.
SIDE_BIN_EDGES = (0, 8, 16, 32, 64, 96, 128, 256, 512, math.inf)


def _area_histograms(areas: np.ndarray) -> dict[str, Any]:
    coco = {
        name: int(np.count_nonzero((areas >= lo) & (areas < hi)))
        for name, lo, hi in COCO_AREA_RANGES
    }
    sides = np.sqrt(areas)
    edges = np.asarray(SIDE_BIN_EDGES, dtype=np.float64)
    counts = np.histogram(sides, bins=edges)[0] if len(sides) else np.zeros(len(edges) - 1, int)
    fine = [
        {"sqrt_area_from": lo, "sqrt_area_to": None if math.isinf(hi) else hi, "count": int(n)}
        for lo, hi, n in zip(SIDE_BIN_EDGES[:-1], SIDE_BIN_EDGES[1:], counts)
    ]
    return {"coco": coco, "sqrt_area_bins": fine}


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None


def summarize_dataset(coco: CocoFile) -> dict[str, Any]:
    """Counts, segmentation kinds, area histograms and per-category figures of a dataset."""
    kinds: Counter[str] = Counter()
    per_cat_anns: Counter[Any] = Counter()
    per_cat_crowd: Counter[Any] = Counter()
    per_cat_images: dict[Any, set] = {}
    images_with_anns: set = set()
    areas: list[float] = []
    no_area = crowd = degenerate = 0
    for ann in coco.annotations:
        seg = ann.get("segmentation")
        kind = segmentation_kind(seg)
        kinds[kind] += 1
        if kind == "polygon":
            degenerate += sum(1 for p in seg if not isinstance(p, list) or len(p) < 6 or len(p) % 2)
        cat, img = ann.get("category_id"), ann.get("image_id")
        per_cat_anns[cat] += 1
        per_cat_images.setdefault(cat, set()).add(img)
        images_with_anns.add(img)
        if iscrowd(ann):
            crowd += 1
            per_cat_crowd[cat] += 1
        area = _number(ann.get("area"))
        if area is None:
            no_area += 1
        else:
            areas.append(area)
    names = {c.get("id"): c for c in coco.categories if isinstance(c, dict)}
    categories = []
    for cid in sorted(names.keys() | per_cat_anns.keys(), key=lambda c: (str(type(c)), c)):
        record = names.get(cid, {})
        row = {
            "id": cid,
            "name": record.get("name", "(not in categories)"),
            "annotations": per_cat_anns[cid],
            "images": len(per_cat_images.get(cid, ())),
            "crowd": per_cat_crowd[cid],
        }
        if "frequency" in record:
            row["frequency"] = record["frequency"]
        categories.append(row)
    image_ids = {img.get("id") for img in coco.images if isinstance(img, dict)}
    return {
        "file": str(coco.path),
        "kind": coco.kind,
        "images": len(coco.images),
        "annotations": len(coco.annotations),
        "categories": len(coco.categories),
        "crowd_annotations": crowd,
        "images_without_annotations": len(image_ids - images_with_anns),
        "segmentation_kinds": dict(sorted(kinds.items())),
        "degenerate_polygons": degenerate,
        "annotations_without_area": no_area,
        "area": _area_histograms(np.asarray(areas, dtype=np.float64)),
        "per_category": categories,
    }


def summarize_results(detections: list, path: Path) -> dict[str, Any]:
    """Counts, score range and segmentation kinds of a results file."""
    kinds: Counter[str] = Counter()
    per_cat: Counter[Any] = Counter()
    images: set = set()
    scores = []
    for det in detections:
        if not isinstance(det, dict):
            kinds["invalid"] += 1
            continue
        kinds[segmentation_kind(det.get("segmentation"))] += 1
        per_cat[det.get("category_id")] += 1
        images.add(det.get("image_id"))
        score = _number(det.get("score"))
        if score is not None:
            scores.append(score)
    score_arr = np.asarray(scores, dtype=np.float64)
    return {
        "file": str(path),
        "kind": "results",
        "detections": len(detections),
        "images": len(images),
        "categories": len(per_cat),
        "score": (
            {
                "min": float(score_arr.min()),
                "mean": float(score_arr.mean()),
                "max": float(score_arr.max()),
            }
            if len(score_arr)
            else None
        ),
        "segmentation_kinds": dict(sorted(kinds.items())),
        "per_category": [
            {"id": cid, "detections": n}
            for cid, n in sorted(per_cat.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
        ],
    }


def _print_dataset(summary: dict[str, Any], console: Console, max_categories: int) -> None:
    console.print(f"[bold]{summary['file']}[/bold] ({summary['kind']})", highlight=False)
    overview = Table(show_header=False)
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    for key in ("images", "annotations", "categories", "crowd_annotations"):
        overview.add_row(key.replace("_", " "), f"{summary[key]:,}")
    overview.add_row("images without annotations", f"{summary['images_without_annotations']:,}")
    for kind, n in summary["segmentation_kinds"].items():
        overview.add_row(f"segmentation: {kind}", f"{n:,}")
    overview.add_row("degenerate polygons (< 3 points)", f"{summary['degenerate_polygons']:,}")
    if summary["annotations_without_area"]:
        overview.add_row("annotations without area", f"{summary['annotations_without_area']:,}")
    console.print(overview)

    total = max(sum(summary["area"]["coco"].values()), 1)
    areas = Table(title="area (COCO ranges, pixels)")
    areas.add_column("range")
    areas.add_column("annotations", justify="right")
    areas.add_column("share", justify="right")
    bounds = {"small": "< 32²", "medium": "32² - 96²", "large": ">= 96²"}
    for name, n in summary["area"]["coco"].items():
        areas.add_row(f"{name} ({bounds[name]})", f"{n:,}", f"{100 * n / total:.1f}%")
    for row in summary["area"]["sqrt_area_bins"]:
        hi = "inf" if row["sqrt_area_to"] is None else row["sqrt_area_to"]
        label = f"  sqrt(area) {row['sqrt_area_from']}-{hi}"
        areas.add_row(label, f"{row['count']:,}", f"{100 * row['count'] / total:.1f}%")
    console.print(areas)

    rows = summary["per_category"]
    table = Table(title="per category")
    table.add_column("id", justify="right")
    table.add_column("name")
    lvis = any("frequency" in r for r in rows)
    if lvis:
        table.add_column("freq")
    for column in ("annotations", "images", "crowd"):
        table.add_column(column, justify="right")
    shown = rows if max_categories <= 0 else rows[:max_categories]
    for r in shown:
        cells = [str(r["id"]), str(r["name"])]
        if lvis:
            cells.append(str(r.get("frequency", "")))
        cells += [f"{r['annotations']:,}", f"{r['images']:,}", f"{r['crowd']:,}"]
        table.add_row(*cells)
    console.print(table)
    if len(shown) < len(rows):
        console.print(f"({len(rows) - len(shown)} more categories; --max-categories 0 shows all)")


def _print_results(summary: dict[str, Any], console: Console, max_categories: int) -> None:
    console.print(f"[bold]{summary['file']}[/bold] (results)", highlight=False)
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("detections", "images", "categories"):
        table.add_row(key, f"{summary[key]:,}")
    if summary["score"]:
        s = summary["score"]
        table.add_row(
            "score min / mean / max", f"{s['min']:.4g} / {s['mean']:.4g} / {s['max']:.4g}"
        )
    for kind, n in summary["segmentation_kinds"].items():
        table.add_row(f"segmentation: {kind}", f"{n:,}")
    console.print(table)
    rows = summary["per_category"]
    per_cat = Table(title="detections per category")
    per_cat.add_column("category id", justify="right")
    per_cat.add_column("detections", justify="right")
    shown = rows if max_categories <= 0 else rows[:max_categories]
    for r in shown:
        per_cat.add_row(str(r["id"]), f"{r['detections']:,}")
    console.print(per_cat)
    if len(shown) < len(rows):
        console.print(f"({len(rows) - len(shown)} more categories; --max-categories 0 shows all)")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead.")
@click.option(
    "--max-categories",
    default=100,
    show_default=True,
    help="Rows of the per-category table (0: all). --json always lists all.",
)
def info(file: Path, as_json: bool, max_categories: int) -> None:
    """Summarize a COCO / LVIS / COCO-ReM instances file or a results file.

    Counts of images, annotations, categories and crowd regions; segmentation kinds (polygon,
    compressed RLE, uncompressed RLE); area histograms (COCO's small / medium / large, then finer
    bins of sqrt(area)) from the ``area`` field; and a per-category table.
    """
    data = read_json(file)
    if not isinstance(data, dict | list):
        raise RemError(
            f"expected an instances object or a results list, got a JSON {type(data).__name__}",
            path=file,
        )
    try:
        with gc_paused():
            if detect_kind(data) == "results":
                summary = summarize_results(data, file)
            else:
                summary = summarize_dataset(CocoFile(data, file))
    except (TypeError, AttributeError) as exc:
        # Unhashable ids, records that are not objects...: the file is not merely messy.
        raise RemError(
            f"cannot summarize a malformed file ({exc}); `rem validate` says what is wrong",
            path=file,
        ) from None
    if as_json:
        click.echo(dumps_json(summary, indent=True).decode("utf-8"))
        return
    console = Console()
    if summary["kind"] == "results":
        _print_results(summary, console, max_categories)
    else:
        _print_dataset(summary, console, max_categories)
