"""`rem convert`: change segmentation encodings and cut subsets of an instances file.

Encodings: polygons -> RLE is exact (pycocotools rasterises and unions the polygons, as
``COCO.annToRLE`` does); compressed <-> uncompressed RLE is exact; RLE -> polygons is lossy:
outer contours are traced with OpenCV (pixel-centre vertices), holes are lost, and parts smaller
than 3 points disappear. Crowd regions stay RLE when converting to polygons, as COCO stores them.

Only ``segmentation`` changes; ``area``, ``bbox`` and every other field are kept as they are.
Degenerate polygons (fewer than 3 points, or an odd number of coordinates) are always dropped,
and an annotation left with no polygon is dropped, both with a counted warning (as detectron2
does when it loads COCO).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import TimeElapsedColumn

from rem_core.errors import RemError
from rem_core.io import CocoFile, iscrowd, load_coco, save_json, segmentation_kind
from rem_core.progress import progress_bar

TARGETS = ("polygon", "rle", "uncompressed-rle")

W_DEGENERATE = "degenerate polygons dropped (fewer than 3 points or an odd number of coordinates)"
W_EMPTIED = "annotations dropped: no polygon of 3+ points left"
W_NO_IMAGE = "annotations dropped: their image is not in images, so the mask size is unknown"
W_CROWD_KEPT = "crowd annotations kept as RLE (COCO stores crowd regions as RLE)"
W_NO_CONTOUR = "annotations dropped: their mask traced to no polygon of 3+ points"


def _parse_ids(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers, got {text!r}", param_hint=option
        ) from None


def _keep_polygon(poly: Any) -> bool:
    return (
        type(poly) is list
        and len(poly) >= 6
        and not len(poly) % 2
        and all(type(v) in (int, float) for v in poly)
    )


def _segment_converter(to: str | None) -> Callable[[Any, int, int, dict], Any]:
    """A function (segmentation, height, width, annotation) -> new segmentation."""
    from rem_core import masks  # numpy / OpenCV / pycocotools: only when converting

    def to_rle(seg: Any, h: int, w: int, ann: dict) -> Any:
        if isinstance(seg, dict):
            # RLE keeps its own size; the image size is not needed.
            return masks.to_rle(seg, *masks.rle_size(seg))
        return masks.to_rle(seg, h, w)

    if to == "rle":
        return to_rle
    if to == "uncompressed-rle":
        return lambda seg, h, w, ann: masks.to_uncompressed(to_rle(seg, h, w, ann))
    if to == "polygon":

        def to_polygon(seg: Any, h: int, w: int, ann: dict) -> Any:
            if isinstance(seg, list) or iscrowd(ann):
                return seg
            return trace_polygons(seg)

        return to_polygon
    return lambda seg, h, w, ann: seg


def trace_polygons(rle: dict) -> list[list[float]]:
    """Polygons of an RLE's outer contours, traced on its box crop only.

    Same result as ``masks.mask_to_polygons(masks.decode(rle))`` but O(box) instead of
    O(image): the crop gets a one-pixel zero frame (so contours touching the box edge are traced
    as on the full image) and the vertices are shifted back to image coordinates.
    """
    import numpy as np

    from rem_core import masks

    crop, x0, y0 = masks.decode_box(rle)
    if crop.size == 0:
        return []
    framed = np.zeros((crop.shape[0] + 2, crop.shape[1] + 2), dtype=np.uint8)
    framed[1:-1, 1:-1] = crop
    shift = np.array([x0 - 1, y0 - 1], dtype=np.float64)
    out = []
    for poly in masks.mask_to_polygons(framed):
        coords = np.asarray(poly, dtype=np.float64).reshape(-1, 2) + shift
        out.append(coords.ravel().tolist())
    return out


def convert_dataset(
    coco: CocoFile,
    to: str | None = None,
    image_ids: list[int] | None = None,
    category_ids: list[int] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[dict, Counter[str]]:
    """A new dataset dict (records shallow-copied where changed) and the warning counts.

    ``image_ids`` / ``category_ids`` (None: all) select images and categories; annotations are
    kept when both their image and category are kept. Images of a category subset are all kept
    (they are true negatives for the other categories).
    """
    path = coco.path
    if image_ids is not None:
        unknown = [i for i in image_ids if i not in coco.imgs]
        if unknown:
            raise RemError(f"image ids not in the file: {unknown[:10]}", path=path)
    if category_ids is not None:
        unknown = [c for c in category_ids if c not in coco.cats]
        if unknown:
            raise RemError(f"category ids not in the file: {unknown[:10]}", path=path)
    keep_images = None if image_ids is None else set(image_ids)
    keep_cats = None if category_ids is None else set(category_ids)
    convert = _segment_converter(to)
    warnings: Counter[str] = Counter()

    annotations = []
    for i, ann in enumerate(coco.annotations):
        if on_progress is not None and i % 4096 == 0:
            on_progress(i)
        if keep_images is not None and ann.get("image_id") not in keep_images:
            continue
        if keep_cats is not None and ann.get("category_id") not in keep_cats:
            continue
        seg = ann.get("segmentation")
        kind = segmentation_kind(seg)
        if kind == "polygon":
            kept = [p for p in seg if _keep_polygon(p)]
            if len(kept) < len(seg):
                warnings[W_DEGENERATE] += len(seg) - len(kept)
            if not kept:
                warnings[W_EMPTIED] += 1
                continue
            seg = kept
        if kind in ("polygon", "rle", "uncompressed-rle") and to is not None:
            image = coco.imgs.get(ann.get("image_id"))
            needs_size = kind == "polygon" and to != "polygon"
            if needs_size and image is None:
                warnings[W_NO_IMAGE] += 1
                continue
            h, w = (image["height"], image["width"]) if image is not None else (0, 0)
            try:
                new = convert(seg, h, w, ann)
            except RemError as exc:
                raise RemError(
                    f"{exc.detail} (`rem validate` lists every problem)",
                    path=path,
                    where=f"annotations[{i}].segmentation",
                ) from None
            if to == "polygon" and kind != "polygon":
                if iscrowd(ann):
                    warnings[W_CROWD_KEPT] += 1
                elif not new:
                    warnings[W_NO_CONTOUR] += 1
                    continue
            seg = new
        if seg is not ann.get("segmentation"):
            ann = {**ann, "segmentation": seg}
        annotations.append(ann)

    out = dict(coco.dataset)
    if keep_images is not None:
        out["images"] = [img for img in coco.images if img.get("id") in keep_images]
    if keep_cats is not None:
        out["categories"] = [c for c in coco.categories if c.get("id") in keep_cats]
        images = []
        for img in out["images"]:
            # LVIS: negative / not-exhaustive category lists may only name kept categories.
            fixed = {
                key: [c for c in img[key] if c in keep_cats]
                for key in ("neg_category_ids", "not_exhaustive_category_ids")
                if isinstance(img.get(key), list)
            }
            images.append({**img, **fixed} if fixed else img)
        out["images"] = images
    if "annotations" in coco.dataset or annotations:
        out["annotations"] = annotations
    return out, warnings


@click.command()
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    type=click.Choice(TARGETS),
    help="Segmentation encoding to write (default: keep each as it is). polygon is lossy.",
)
@click.option("--image-ids", help="Keep only these images, e.g. 139,285,632.")
@click.option("--category-ids", help="Keep only these categories (ids), e.g. 1,18.")
@click.option(
    "--categories", "category_names", help="Keep only these categories (names), e.g. person,dog."
)
@click.option("--indent", is_flag=True, help="Pretty-print the output JSON.")
def convert(
    src: Path,
    dst: Path,
    to: str | None,
    image_ids: str | None,
    category_ids: str | None,
    category_names: str | None,
    indent: bool,
) -> None:
    """Convert segmentations of instances file IN and/or cut a subset; write OUT atomically.

    polygon -> rle and rle <-> uncompressed-rle are exact. rle -> polygon traces outer contours
    with OpenCV: lossy (holes and sub-3-point parts are lost); crowd regions stay RLE. Degenerate
    polygons (< 3 points or odd length) are dropped with a counted warning, and annotations left
    without any polygon are dropped. Fields other than segmentation (area, bbox...) are kept.
    """
    if category_ids is not None and category_names is not None:
        raise click.UsageError("use --category-ids or --categories, not both")
    img_ids = _parse_ids(image_ids, "--image-ids")
    cat_ids = _parse_ids(category_ids, "--category-ids")
    coco = load_coco(src)
    if category_names is not None:
        wanted = [n.strip() for n in category_names.split(",") if n.strip()]
        by_name = {c.get("name"): c.get("id") for c in coco.categories}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            known = ", ".join(sorted(map(str, by_name))[:12])
            raise RemError(f"no category named {unknown} (some names: {known})", path=src)
        cat_ids = [by_name[n] for n in wanted]

    console = Console(stderr=True)
    with progress_bar(
        console, "converting", tail=(TimeElapsedColumn(),), transient=True
    ) as progress:
        task = progress.add_task("convert", total=len(coco.annotations))
        out, warnings = convert_dataset(
            coco, to, img_ids, cat_ids, on_progress=lambda i: progress.update(task, completed=i)
        )
    save_json(dst, out, indent=indent)
    for what, n in sorted(warnings.items()):
        if n:
            click.echo(f"warning: {n} {what}", err=True)
    click.echo(
        f"wrote {dst}: {len(out.get('images', []))} images, {len(out.get('annotations', []))} "
        f"annotations, {len(out.get('categories', []))} categories"
        + (f"; segmentations as {to}" if to else "")
    )
