"""Comparing two annotation sets of the same images (e.g. COCO and its refined version).

Per image, instances are paired (:mod:`rem_viz.matching`), each pair gets mask IoU, Boundary IoU
and added/removed pixel counts, and the image is drawn as A | B | difference. Per category, the
pairs are summarised: how many instances were kept, added or removed and how much the kept ones
moved, which says how much a refinement changed each class.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console

from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError
from rem_core.image_files import image_name
from rem_core.io import save_json
from rem_viz.difference import ADDED, REMOVED, difference_view, side_by_side, with_header
from rem_viz.images import fit_width, locate_image, read_rgb, write_image
from rem_viz.instances import AnnotationSet, Decoded, Instance, decode_instances
from rem_viz.matching import MATCH_MODES, boundary_iou, match_by_id, match_by_iou, pixel_change
from rem_viz.overlays import THUMB_WIDTH, as_instances, filter_instances, paint_decoded
from rem_viz.parallel import run_jobs


@dataclass(frozen=True)
class InstanceChange:
    """One instance of A paired with one of B, or left alone (removed: A only; added: B only).

    ``category_id`` is A's category (B's for an added instance); ``category_id_b`` differs from
    it only when id matching pairs instances that a refinement relabelled. Areas and pixel
    counts are in pixels of the image; IoUs are None for unpaired instances.
    """

    image_id: int
    category_id: int
    category_id_b: int | None
    ann_id_a: int | None
    ann_id_b: int | None
    status: str  # "matched", "removed" or "added"
    area_a: int
    area_b: int
    added_px: int
    removed_px: int
    mask_iou: float | None
    boundary_iou: float | None

    @property
    def union_px(self) -> int:
        return self.area_a + self.added_px

    @property
    def changed_px(self) -> int:
        return self.added_px + self.removed_px


def compare_decoded(
    image_id: int,
    a: Decoded,
    b: Decoded,
    *,
    match: str = "iou",
    min_iou: float = 0.1,
    dilation_ratio: float = 0.02,
) -> tuple[list[InstanceChange], list[tuple[int | None, int | None]]]:
    """Pair and measure decoded instances of one image.

    Returns the changes and, aligned with them, the (A index, B index) of each (None: absent).
    """
    if match == "iou":
        pairs = match_by_iou(
            a.rles,
            [x.category_id for x in a.instances],
            b.rles,
            [x.category_id for x in b.instances],
            min_iou,
        )
    elif match == "id":
        pairs = match_by_id([x.ann_id for x in a.instances], [x.ann_id for x in b.instances])
    else:
        raise RemError(f"unknown match mode {match!r}; use one of {', '.join(MATCH_MODES)}")
    partner = dict(pairs)
    matched_b = set(partner.values())
    order: list[tuple[int | None, int | None]] = [(i, partner.get(i)) for i in range(len(a.rles))]
    order += [(None, j) for j in range(len(b.rles)) if j not in matched_b]
    changes = []
    for i, j in order:
        ia = a.instances[i] if i is not None else None
        jb = b.instances[j] if j is not None else None
        px = pixel_change(
            a.masks[i] if i is not None else None, b.masks[j] if j is not None else None
        )
        both = ia is not None and jb is not None
        changes.append(
            InstanceChange(
                image_id=image_id,
                category_id=(ia or jb).category_id,
                category_id_b=jb.category_id if jb is not None else None,
                ann_id_a=ia.ann_id if ia is not None else None,
                ann_id_b=jb.ann_id if jb is not None else None,
                status="matched" if both else ("removed" if ia is not None else "added"),
                area_a=px.area_a,
                area_b=px.area_b,
                added_px=px.added,
                removed_px=px.removed,
                mask_iou=px.iou if both else None,
                boundary_iou=boundary_iou(a.rles[i], b.rles[j], dilation_ratio) if both else None,
            )
        )
    return changes, order


def compare_image(
    image: np.ndarray | None,
    instances_a: Sequence[Instance | Mapping],
    instances_b: Sequence[Instance | Mapping],
    names: Mapping[int, str],
    *,
    image_id: int = 0,
    height: int | None = None,
    width: int | None = None,
    match: str = "iou",
    min_iou: float = 0.1,
    dilation_ratio: float = 0.02,
    titles: tuple[str, str] = ("A", "B"),
    draw_labels: bool = False,
) -> tuple[list[InstanceChange], np.ndarray | None]:
    """Compare two instance lists of one image; returns (changes, composite or None).

    Instances are :class:`Instance` objects or annotation dicts, on an (H, W) frame.
    The composite (RGB) is A's overlay | B's overlay | the difference view, each under a title
    strip; it is None when ``image`` is None (then ``height`` and ``width`` give the frame).
    """
    if image is not None:
        height, width = image.shape[:2]
    if height is None or width is None:
        raise ValueError("give the image or its height and width")
    a = decode_instances(as_instances(instances_a), height, width)
    b = decode_instances(as_instances(instances_b), height, width)
    changes, order = compare_decoded(
        image_id, a, b, match=match, min_iou=min_iou, dilation_ratio=dilation_ratio
    )
    if image is None:
        return changes, None
    return changes, _panels(image, a, b, order, names, titles, draw_labels)[0]


def _panels(image, a, b, order, names, titles, draw_labels) -> tuple[np.ndarray, np.ndarray]:
    """(A | B | difference composite, the bare difference view)."""
    pairs = [
        (a.masks[i] if i is not None else None, b.masks[j] if j is not None else None)
        for i, j in order
    ]
    left = paint_decoded(image, a, names, draw_labels)
    right = paint_decoded(image, b, names, draw_labels)
    diff = difference_view(image, pairs)
    composite = side_by_side(
        [
            with_header(left, f"A: {titles[0]} ({len(a.instances)})"),
            with_header(right, f"B: {titles[1]} ({len(b.instances)})"),
            with_header(diff, "B vs A", [(ADDED, "added"), (REMOVED, "removed")]),
        ]
    )
    return composite, diff


# --------------------------------------------------------------------------------------------
# Summaries


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarize_changes(changes: Iterable[InstanceChange]) -> dict:
    """Counts, IoU statistics and pixel totals of a group of changes (a category, or all).

    ``changed_fraction`` = changed pixels / pixels in A or B, summed over instances: 0 when
    nothing moved, 1 when every instance was added or removed.
    """
    changes = list(changes)
    matched = [c for c in changes if c.status == "matched"]
    ious = [c.mask_iou for c in matched]
    bious = [c.boundary_iou for c in matched]
    union = sum(c.union_px for c in changes)
    changed = sum(c.changed_px for c in changes)
    return {
        "images": len({c.image_id for c in changes}),
        "instances_a": sum(c.status != "added" for c in changes),
        "instances_b": sum(c.status != "removed" for c in changes),
        "matched": len(matched),
        "removed": sum(c.status == "removed" for c in changes),
        "added": sum(c.status == "added" for c in changes),
        "relabelled": sum(c.category_id_b != c.category_id for c in matched),
        "mean_mask_iou": _mean(ious),
        "median_mask_iou": _median(ious),
        "mean_boundary_iou": _mean(bious),
        "median_boundary_iou": _median(bious),
        "pixels_a": sum(c.area_a for c in changes),
        "pixels_b": sum(c.area_b for c in changes),
        "pixels_added": sum(c.added_px for c in changes),
        "pixels_removed": sum(c.removed_px for c in changes),
        "changed_fraction": changed / union if union else 0.0,
    }


def summarize_by_category(
    changes: Iterable[InstanceChange], names: Mapping[int, str]
) -> list[dict]:
    """One :func:`summarize_changes` row per category (by id), with its id and name first."""
    groups: dict[int, list[InstanceChange]] = defaultdict(list)
    for c in changes:
        groups[c.category_id].append(c)
    return [
        {"category_id": cid, "category": names.get(cid, str(cid)), **summarize_changes(groups[cid])}
        for cid in sorted(groups)
    ]


# --------------------------------------------------------------------------------------------
# Whole files


@dataclass(frozen=True)
class ImageComparison:
    """The comparison of one image; ``composite``/``thumb`` are paths relative to the output."""

    image_id: int
    file_name: str
    changes: tuple[InstanceChange, ...]
    composite: str | None = None
    thumb: str | None = None
    problems: tuple[str, ...] = ()
    failure: str | None = None  # why the image was not drawn (unreadable, size mismatch)


@dataclass
class Comparison:
    """Everything :func:`compare_sets` found; ``missing`` lists image files not found."""

    name_a: str
    name_b: str
    path_a: str | None
    path_b: str | None
    names: dict[int, str]
    images: list[ImageComparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    only_in_a: list[int] = field(default_factory=list)
    only_in_b: list[int] = field(default_factory=list)
    size_mismatch: list[int] = field(default_factory=list)
    empty: int = 0  # shared images without an instance (of the chosen categories), skipped
    match: str = "iou"
    min_iou: float = 0.1
    dilation_ratio: float = 0.02
    seconds: float = 0.0

    @property
    def changes(self) -> list[InstanceChange]:
        return [c for img in self.images for c in img.changes]

    @property
    def problems(self) -> list[str]:
        return [p for img in self.images for p in img.problems]

    @property
    def drawn(self) -> int:
        return sum(img.composite is not None for img in self.images)

    def categories(self) -> list[dict]:
        return summarize_by_category(self.changes, self.names)

    def summary(self) -> dict:
        """The JSON summary: inputs, image counts, totals and one row per category."""
        return {
            "a": {"name": self.name_a, "path": self.path_a},
            "b": {"name": self.name_b, "path": self.path_b},
            "match": {"mode": self.match, "min_iou": self.min_iou},
            "dilation_ratio": self.dilation_ratio,
            "images": {
                "compared": len(self.images),
                "without_instances": self.empty,
                "drawn": self.drawn,
                "missing": self.missing,
                "not_drawn": [
                    {"image_id": i.image_id, "reason": i.failure} for i in self.images if i.failure
                ],
                "only_in_a": self.only_in_a,
                "only_in_b": self.only_in_b,
                "size_mismatch": self.size_mismatch,
            },
            "skipped_instances": self.problems,
            "overall": summarize_changes(self.changes),
            "categories": self.categories(),
        }


@dataclass(frozen=True)
class _Job:
    image_id: int
    file_name: str
    height: int
    width: int
    source: str | None
    instances_a: list[Instance]
    instances_b: list[Instance]
    composite: str | None
    thumb: str | None


@dataclass(frozen=True)
class _Options:
    names: dict[int, str]
    titles: tuple[str, str]
    match: str
    min_iou: float
    dilation_ratio: float
    draw_labels: bool
    panel_width: int
    quality: int
    out_dir: str | None


_OPTIONS: _Options | None = None


def _init_worker(options: _Options) -> None:
    global _OPTIONS
    _OPTIONS = options


def _compare_job(job: _Job) -> ImageComparison:
    opts = _OPTIONS
    assert opts is not None, "worker not initialised"
    a = decode_instances(job.instances_a, job.height, job.width)
    b = decode_instances(job.instances_b, job.height, job.width)
    changes, order = compare_decoded(
        job.image_id,
        a,
        b,
        match=opts.match,
        min_iou=opts.min_iou,
        dilation_ratio=opts.dilation_ratio,
    )
    problems = tuple(f"A: {p}" for p in a.problems) + tuple(f"B: {p}" for p in b.problems)
    result = ImageComparison(job.image_id, job.file_name, tuple(changes), problems=problems)
    if job.source is None or opts.out_dir is None or job.composite is None:
        return result
    image = read_rgb(Path(job.source))
    if image is None:
        return replace(result, failure="cannot be decoded as an image")
    if image.shape[:2] != (job.height, job.width):
        return replace(
            result,
            failure=f"image is {image.shape[1]}x{image.shape[0]} but the annotations say "
            f"{job.width}x{job.height}",
        )
    composite, diff = _panels(image, a, b, order, opts.names, opts.titles, opts.draw_labels)
    out = Path(opts.out_dir)
    write_image(out / job.composite, fit_width(composite, 3 * opts.panel_width), opts.quality)
    write_image(out / job.thumb, fit_width(diff, THUMB_WIDTH), 85)
    return replace(result, composite=job.composite, thumb=job.thumb)


def compare_sets(
    a: AnnotationSet,
    b: AnnotationSet,
    *,
    image_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    image_ids: Sequence[int] = (),
    category_ids: set[int] | None = None,
    max_images: int | None = None,
    names: tuple[str, str] = ("A", "B"),
    match: str = "iou",
    min_iou: float = 0.1,
    dilation_ratio: float = 0.02,
    draw_labels: bool = False,
    panel_width: int = 960,
    quality: int = 88,
    workers: int | None = None,
    console: Console | None = None,
) -> Comparison:
    """Compare every image the two sets share (or ``image_ids``), in parallel.

    With ``image_dir`` and ``out_dir`` each image is also drawn to
    ``out_dir/images/{id}.jpg`` (A | B | difference) with a thumbnail of the difference in
    ``out_dir/thumbs/``. Images missing from ``image_dir`` are listed in ``missing`` and not
    drawn; their masks are still compared, since that needs no pixels. Images present in only
    one set are listed, not compared; images without any instance in either set are skipped.
    """
    if match not in MATCH_MODES:
        raise RemError(f"unknown match mode {match!r}; use one of {', '.join(MATCH_MODES)}")
    result = Comparison(
        name_a=names[0],
        name_b=names[1],
        path_a=None if a.path is None else str(a.path),
        path_b=None if b.path is None else str(b.path),
        names={**b.names, **a.names},
        match=match,
        min_iou=min_iou,
        dilation_ratio=dilation_ratio,
    )
    result.only_in_a = sorted(set(a.images) - set(b.images))
    result.only_in_b = sorted(set(b.images) - set(a.images))
    if image_ids:
        unknown = [i for i in image_ids if i not in a.images or i not in b.images]
        if unknown:
            raise RemError(f"image id {unknown[0]} is not in both files", where="--image-id")
        chosen = list(dict.fromkeys(image_ids))
    else:
        # Like the overlays, images with nothing in either set are left out (and counted).
        chosen = []
        for i in sorted(set(a.images) & set(b.images)):
            if filter_instances(a.instances[i], category_ids) or filter_instances(
                b.instances[i], category_ids
            ):
                chosen.append(i)
            else:
                result.empty += 1
    if max_images is not None:
        chosen = chosen[:max_images]
    image_dir = None if image_dir is None else Path(image_dir)
    if image_dir is not None and not image_dir.is_dir():
        raise RemError("image folder not found", path=image_dir)
    draw = image_dir is not None and out_dir is not None
    jobs = []
    for image_id in chosen:
        rec_a, rec_b = a.images[image_id], b.images[image_id]
        size = (int(rec_a["height"]), int(rec_a["width"]))
        if size != (int(rec_b["height"]), int(rec_b["width"])):
            result.size_mismatch.append(image_id)
            continue
        source = locate_image(image_dir, rec_a) if image_dir is not None else None
        if image_dir is not None and source is None:
            result.missing.append(image_name(rec_a))
        jobs.append(
            _Job(
                image_id=image_id,
                file_name=image_name(rec_a),
                height=size[0],
                width=size[1],
                source=None if source is None else str(source),
                instances_a=filter_instances(a.instances[image_id], category_ids),
                instances_b=filter_instances(b.instances[image_id], category_ids),
                composite=f"images/{image_id}.jpg" if draw else None,
                thumb=f"thumbs/{image_id}.jpg" if draw else None,
            )
        )
    options = _Options(
        names=result.names,
        titles=names,
        match=match,
        min_iou=min_iou,
        dilation_ratio=dilation_ratio,
        draw_labels=draw_labels,
        panel_width=panel_width,
        quality=quality,
        out_dir=None if out_dir is None else str(out_dir),
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result.images = run_jobs(
        _compare_job,
        jobs,
        workers=workers,
        initializer=_init_worker,
        initargs=(options,),
        label="comparing",
        console=console,
    )
    result.seconds = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------------------------
# Writing summaries

CATEGORY_FIELDS = [
    "category_id",
    "category",
    *summarize_changes([]).keys(),
]
INSTANCE_FIELDS = [f for f in InstanceChange.__dataclass_fields__]


def _csv_text(rows: Iterable[Mapping], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return buf.getvalue()


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``summary.json``, ``categories.csv`` and ``instances.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = comparison.summary()
    paths = {
        "summary": out / "summary.json",
        "categories": out / "categories.csv",
        "instances": out / "instances.csv",
    }
    save_json(paths["summary"], summary, indent=True)
    atomic_write_text(paths["categories"], _csv_text(summary["categories"], CATEGORY_FIELDS))
    rows = [asdict(c) for c in comparison.changes]
    atomic_write_text(paths["instances"], _csv_text(rows, INSTANCE_FIELDS))
    return paths
