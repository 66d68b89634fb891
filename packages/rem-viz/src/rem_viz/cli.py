"""`rem viz`, `rem compare` and `rem plot`: the command line over the Python API."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError

LISTED = 20


def _console() -> Console:
    return Console(stderr=True)


def _warn_listing(what: str, items: list[str], where: Path | None = None) -> None:
    if not items:
        return
    shown = ", ".join(items[:LISTED])
    more = f" ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    saved = f" (full list: {where})" if where is not None and len(items) > LISTED else ""
    click.echo(f"warning: {len(items)} {what}: {shown}{more}{saved}", err=True)


@click.command("viz")
@click.option(
    "--input-json",
    "input_json",
    required=True,
    type=click.Path(path_type=Path),
    help="COCO / LVIS / COCO-ReM annotation file (images and category names).",
)
@click.option(
    "--image-dir", required=True, type=click.Path(path_type=Path), help="Folder holding the images."
)
@click.option(
    "--output",
    default=Path("viz"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for the drawn images.",
)
@click.option("--draw-labels", is_flag=True, help='Label masks "name|crowd (id)" ("name score").')
@click.option(
    "--class-name",
    "class_names",
    multiple=True,
    help="Draw only this category (repeatable); its name is added to file names.",
)
@click.option(
    "--category-id",
    "category_ids",
    multiple=True,
    type=int,
    help="Draw only this category id (repeatable).",
)
@click.option(
    "--image-id", "image_ids", multiple=True, type=int, help="Draw only this image (repeatable)."
)
@click.option("--max-images", type=click.IntRange(min=0), help="Draw at most this many images.")
@click.option("--filename-suffix", help="Added before the extension: x.jpg -> x_SUFFIX.jpg.")
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    help="Draw these detections (a COCO results list) instead of the annotations.",
)
@click.option(
    "--score-threshold",
    default=0.5,
    show_default=True,
    type=float,
    help="With --results: draw detections scoring at least this.",
)
@click.option(
    "--alpha", default=0.55, show_default=True, type=click.FloatRange(0, 1), help="Mask opacity."
)
@click.option(
    "--format",
    "image_format",
    type=click.Choice(["jpg", "png", "webp"]),
    help="Output format (default: that of each source image).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Processes (default: all CPUs).")
@click.option("--html", is_flag=True, help="Also write OUTPUT/index.html, a gallery of the images.")
@click.option("--embed-images", is_flag=True, help="With --html: inline images in the page.")
def viz(
    input_json: Path,
    image_dir: Path,
    output: Path,
    draw_labels: bool,
    class_names: tuple[str, ...],
    category_ids: tuple[int, ...],
    image_ids: tuple[int, ...],
    max_images: int | None,
    filename_suffix: str | None,
    results: Path | None,
    score_threshold: float,
    alpha: float,
    image_format: str | None,
    workers: int | None,
    html: bool,
    embed_images: bool,
) -> None:
    """Draw masks over images: filled, outlined, largest first, one colour per category.

    Same options as COCO-ReM's visualize_coco.py (--input-json, --image-dir, --draw-labels,
    --class-name, --output, --filename-suffix), plus image and category filters, detections
    (--results) and an HTML gallery (--html). Missing images are listed and skipped.
    """
    from rem_viz.instances import load_annotation_set, load_detection_set
    from rem_viz.overlays import render_overlays
    from rem_viz.reports import overlay_report
    from rem_viz.selection import resolve_categories, select_images

    aset = load_annotation_set(input_json)
    if results is not None:
        aset = load_detection_set(results, aset, score_threshold)
    cats = resolve_categories(aset.categories, class_names, category_ids, path=aset.path)
    chosen = select_images(aset, image_ids, cats, max_images)
    if not chosen:
        click.echo("nothing to draw: no image has an instance of the chosen categories")
        return
    suffixes = [*class_names, *([filename_suffix] if filename_suffix else [])]
    summary = render_overlays(
        aset,
        image_dir,
        output,
        image_ids=chosen,
        category_ids=cats,
        draw_labels=draw_labels,
        suffixes=suffixes,
        alpha=alpha,
        image_format=None if image_format is None else f".{image_format}",
        thumbnails=html,
        workers=workers,
        console=_console(),
    )
    if summary.missing and not summary.written and not summary.failed:
        raise RemError(
            f"none of the {len(summary.missing)} images was found (first: "
            f"{summary.missing[0]!r}); is this the right image folder?",
            path=image_dir,
        )
    missing_list = None
    if len(summary.missing) > LISTED:
        missing_list = output / "missing_images.txt"
        atomic_write_text(missing_list, "\n".join(summary.missing) + "\n")
    _warn_listing(f"images missing from {image_dir}, skipped", summary.missing, missing_list)
    _warn_listing("images not drawn", [f"{n} ({why})" for n, why in summary.failed])
    _warn_listing("instances with unreadable masks skipped", summary.bad_instances)
    click.echo(
        f"wrote {len(summary.written)} images ({summary.instances_drawn} masks) to {output} "
        f"in {summary.seconds:.1f}s ({summary.images_per_second:.1f} images/s)"
    )
    if html:
        title = f"{input_json.name}" + (f" - {results.name}" if results else "")
        page = overlay_report(summary, aset, title=title, embed=embed_images)
        click.echo(f"report: {page}")


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option(
    "--image-dir",
    type=click.Path(path_type=Path),
    help="Folder holding the images; without it only statistics are written.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (summary.json, categories.csv, instances.csv, images/).",
)
@click.option("--html", is_flag=True, help="Also write OUT/index.html, a gallery of the changes.")
@click.option("--embed-images", is_flag=True, help="With --html: inline images in the page.")
@click.option("--name-a", help="Name of A in titles (default: its file name).")
@click.option("--name-b", help="Name of B in titles (default: its file name).")
@click.option("--class-name", "class_names", multiple=True, help="Only this category (repeatable).")
@click.option(
    "--category-id",
    "category_ids",
    multiple=True,
    type=int,
    help="Only this category id (repeatable).",
)
@click.option(
    "--image-id", "image_ids", multiple=True, type=int, help="Only this image (repeatable)."
)
@click.option("--max-images", type=click.IntRange(min=0), help="Compare at most this many images.")
@click.option(
    "--match",
    type=click.Choice(["iou", "id"]),
    default="iou",
    show_default=True,
    help="Pair instances by mask IoU within a category, or by annotation id.",
)
@click.option(
    "--min-iou",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="With --match iou: the least IoU that pairs two instances.",
)
@click.option(
    "--dilation-ratio",
    default=0.02,
    show_default=True,
    type=click.FloatRange(0),
    help="Boundary IoU band width as a fraction of the image diagonal.",
)
@click.option("--draw-labels", is_flag=True, help="Label the masks in the A and B panels.")
@click.option(
    "--eval-report",
    "eval_reports",
    multiple=True,
    type=click.Path(path_type=Path),
    help="With --html: add the plots of this evaluation report (repeatable).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Processes (default: all CPUs).")
def compare(
    a: Path,
    b: Path,
    image_dir: Path | None,
    out_dir: Path,
    html: bool,
    embed_images: bool,
    name_a: str | None,
    name_b: str | None,
    class_names: tuple[str, ...],
    category_ids: tuple[int, ...],
    image_ids: tuple[int, ...],
    max_images: int | None,
    match: str,
    min_iou: float,
    dilation_ratio: float,
    draw_labels: bool,
    eval_reports: tuple[Path, ...],
    workers: int | None,
) -> None:
    """Compare two annotation sets of the same images, such as COCO and COCO-ReM.

    Instances are paired and measured (mask IoU, Boundary IoU, pixels added and removed);
    each image is drawn as A | B | difference; summary.json and categories.csv say how much
    each category changed, instances.csv lists every pair.
    """
    from rem_viz.compare import compare_sets, write_comparison
    from rem_viz.instances import load_annotation_set
    from rem_viz.reports import comparison_report
    from rem_viz.selection import resolve_categories

    if html and image_dir is None:
        raise RemError("--html needs --image-dir (the report shows the images)", where="--html")
    set_a, set_b = load_annotation_set(a), load_annotation_set(b)
    categories = {**set_b.categories, **set_a.categories}
    cats = resolve_categories(categories, class_names, category_ids, path=a)
    comparison = compare_sets(
        set_a,
        set_b,
        image_dir=image_dir,
        out_dir=out_dir,
        image_ids=image_ids,
        category_ids=cats,
        max_images=max_images,
        names=(name_a or a.name, name_b or b.name),
        match=match,
        min_iou=min_iou,
        dilation_ratio=dilation_ratio,
        draw_labels=draw_labels,
        workers=workers,
        console=_console(),
    )
    paths = write_comparison(comparison, out_dir)
    _warn_listing(f"images missing from {image_dir}, not drawn", comparison.missing)
    _warn_listing(
        "images not drawn",
        [f"{i.file_name} ({i.failure})" for i in comparison.images if i.failure],
    )
    _warn_listing("images only in A, not compared", [str(i) for i in comparison.only_in_a])
    _warn_listing("images only in B, not compared", [str(i) for i in comparison.only_in_b])
    _warn_listing(
        "images whose size differs in A and B, not compared",
        [str(i) for i in comparison.size_mismatch],
    )
    _warn_listing("instances with unreadable masks skipped", comparison.problems)
    overall = comparison.summary()["overall"]
    iou = overall["mean_mask_iou"]
    biou = overall["mean_boundary_iou"]
    click.echo(
        f"compared {len(comparison.images)} images: {overall['matched']} matched, "
        f"{overall['added']} added, {overall['removed']} removed; "
        + ("" if iou is None else f"mean mask IoU {iou:.3f}, boundary IoU {biou:.3f}; ")
        + f"{100 * overall['changed_fraction']:.1f}% of mask pixels changed"
    )
    for key in ("summary", "categories", "instances"):
        click.echo(f"{key}: {paths[key]}")
    if html:
        figures = []
        if eval_reports:
            from rem_viz.eval_reports import plot_reports

            written = plot_reports(eval_reports, out_dir / "plots")
            figures = [(t, p.relative_to(out_dir).as_posix()) for t, p in written]
        page = comparison_report(comparison, out_dir, figures=figures, embed=embed_images)
        click.echo(f"report: {page}")


@click.command("plot")
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for the plots."
)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "svg"]), default="png", show_default=True
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Name of each report in legends, in order (default: from file names).",
)
@click.option(
    "--iou-type",
    "iou_types",
    multiple=True,
    type=click.Choice(["segm", "bbox", "boundary"]),
    help="Only these IoU types (default: all in the reports).",
)
def plot(
    reports: tuple[Path, ...],
    out_dir: Path,
    fmt: str,
    labels: tuple[str, ...],
    iou_types: tuple[str, ...],
) -> None:
    """Plot evaluation reports (rem eval's JSON): precision-recall curves per IoU threshold,
    AP at IoU thresholds .50-.95 and AP per category, comparing the reports given."""
    from rem_viz.eval_reports import plot_reports

    written = plot_reports(
        reports, out_dir, labels=labels or None, iou_types=iou_types or None, fmt=fmt
    )
    for title, path in written:
        click.echo(f"{title}: {path}")
