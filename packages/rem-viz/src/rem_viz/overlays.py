"""Overlays: an image with its masks filled, outlined and (optionally) labelled.

:func:`overlay` draws one image in memory (for notebooks); :func:`render_overlays` draws a whole
file's worth on several processes, skipping and listing images it cannot find or read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from rem_core.errors import RemError
from rem_viz.draw import paint_instances
from rem_viz.images import fit_width, locate_image, output_name, read_rgb, write_image
from rem_viz.instances import AnnotationSet, Decoded, Instance, decode_instances, label_text
from rem_viz.palette import category_color
from rem_viz.parallel import run_jobs

THUMB_WIDTH = 360


def as_instances(items: Sequence[Instance | Mapping[str, Any]]) -> list[Instance]:
    """Accept :class:`Instance` objects or raw annotation / detection dicts."""
    return [x if isinstance(x, Instance) else Instance.from_record(x) for x in items]


def filter_instances(
    instances: Sequence[Instance],
    category_ids: set[int] | None = None,
    score_threshold: float | None = None,
) -> list[Instance]:
    """Instances of the given categories whose score (if any) reaches the threshold."""
    return [
        x
        for x in instances
        if (category_ids is None or x.category_id in category_ids)
        and (score_threshold is None or x.score is None or x.score >= score_threshold)
    ]


def overlay(
    image: np.ndarray,
    instances: Sequence[Instance | Mapping[str, Any]],
    names: Mapping[int, str] | None = None,
    *,
    draw_labels: bool = False,
    category_ids: set[int] | None = None,
    score_threshold: float | None = None,
    alpha: float = 0.55,
    outline: int = 1,
) -> np.ndarray:
    """The (H, W, 3) RGB image with ``instances`` painted on it (a new array).

    ``instances`` are :class:`Instance` objects or annotation / detection dicts whose masks are
    on this image's (H, W) frame. Colours are fixed per category; masks are painted largest
    first. Labels read ``"name|crowd (id)"`` for annotations and ``"name 0.87"`` for detections.
    A segmentation that cannot be read raises :class:`RemError`.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    chosen = filter_instances(as_instances(instances), category_ids, score_threshold)
    decoded = decode_instances(chosen, image.shape[0], image.shape[1])
    if decoded.problems:
        raise RemError(decoded.problems[0])
    return paint_decoded(image, decoded, names or {}, draw_labels, alpha, outline)


def paint_decoded(
    image: np.ndarray,
    decoded: Decoded,
    names: Mapping[int, str],
    draw_labels: bool = False,
    alpha: float = 0.55,
    outline: int = 1,
) -> np.ndarray:
    """Paint decoded instances in their category colours (see :func:`overlay`)."""
    colors = [category_color(x.category_id) for x in decoded.instances]
    labels = [label_text(x, names) for x in decoded.instances] if draw_labels else None
    return paint_instances(
        image, decoded.masks, colors, labels=labels, alpha=alpha, outline=outline
    )


def overlay_from_set(
    aset: AnnotationSet,
    image_id: int,
    image_dir: str | Path,
    *,
    draw_labels: bool = False,
    category_ids: set[int] | None = None,
    score_threshold: float | None = None,
    alpha: float = 0.55,
) -> np.ndarray:
    """Overlay of one image of a loaded set, read from ``image_dir`` (for notebooks)."""
    if image_id not in aset.images:
        raise RemError(f"image id {image_id} is not in the file", path=aset.path)
    record = aset.images[image_id]
    path = locate_image(Path(image_dir), record)
    image = None if path is None else read_rgb(path)
    if image is None:
        raise RemError(
            f"image {record.get('file_name', image_id)!r} not found or unreadable", path=image_dir
        )
    return overlay(
        image,
        aset.instances[image_id],
        aset.names,
        draw_labels=draw_labels,
        category_ids=category_ids,
        score_threshold=score_threshold,
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------
# Batch rendering


@dataclass(frozen=True)
class _Job:
    image_id: int
    source: str
    height: int
    width: int
    instances: list[Instance]
    out_path: str
    thumb_path: str | None


@dataclass(frozen=True)
class _Options:
    names: dict[int, str]
    draw_labels: bool
    alpha: float
    outline: int
    quality: int


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one image of a batch."""

    image_id: int
    status: str  # "ok", "unreadable" or "size-mismatch"
    drawn: int = 0
    category_counts: tuple[tuple[int, int], ...] = ()  # (category id, instances drawn)
    problems: tuple[str, ...] = ()
    message: str = ""


_OPTIONS: _Options | None = None


def _init_worker(options: _Options) -> None:
    global _OPTIONS
    _OPTIONS = options


def _render_job(job: _Job) -> ImageOutcome:
    opts = _OPTIONS
    assert opts is not None, "worker not initialised"
    image = read_rgb(Path(job.source))
    if image is None:
        return ImageOutcome(job.image_id, "unreadable", message="cannot be decoded as an image")
    if image.shape[:2] != (job.height, job.width):
        return ImageOutcome(
            job.image_id,
            "size-mismatch",
            message=f"image is {image.shape[1]}x{image.shape[0]} but the annotations say "
            f"{job.width}x{job.height}",
        )
    decoded = decode_instances(job.instances, job.height, job.width)
    out = paint_decoded(image, decoded, opts.names, opts.draw_labels, opts.alpha, opts.outline)
    write_image(Path(job.out_path), out, opts.quality)
    if job.thumb_path is not None:
        write_image(Path(job.thumb_path), fit_width(out, THUMB_WIDTH), 85)
    counts = Counter(x.category_id for x in decoded.instances)
    return ImageOutcome(
        job.image_id,
        "ok",
        len(decoded.instances),
        tuple(sorted(counts.items())),
        tuple(decoded.problems),
    )


@dataclass
class RenderSummary:
    """What :func:`render_overlays` did; ``missing`` lists image files not found."""

    output: Path
    written: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bad_instances: list[str] = field(default_factory=list)
    instances_drawn: int = 0
    seconds: float = 0.0
    html: Path | None = None
    outcomes: list[ImageOutcome] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0


def render_overlays(
    aset: AnnotationSet,
    image_dir: str | Path,
    output: str | Path,
    *,
    image_ids: Sequence[int],
    category_ids: set[int] | None = None,
    draw_labels: bool = False,
    suffixes: Sequence[str] = (),
    alpha: float = 0.55,
    outline: int = 1,
    quality: int = 90,
    image_format: str | None = None,
    thumbnails: bool = False,
    workers: int | None = None,
    console: Console | None = None,
) -> RenderSummary:
    """Draw ``image_ids`` of ``aset`` into ``output`` (one file per image), in parallel.

    File names follow COCO-ReM's visualiser: the image's base name, then ``_{suffix}`` for each
    of ``suffixes``, then the extension (``image_format`` or the source's). Images missing from
    ``image_dir`` are listed in the summary and skipped; so are unreadable ones and ones whose
    size disagrees with the file. With ``thumbnails`` a small copy goes to ``output/thumbs``.
    """
    image_dir, output = Path(image_dir), Path(output)
    if not image_dir.is_dir():
        raise RemError("image folder not found", path=image_dir)
    output.mkdir(parents=True, exist_ok=True)
    summary = RenderSummary(output)
    jobs: list[_Job] = []
    used: set[str] = set()
    for image_id in image_ids:
        record = aset.images[image_id]
        source = locate_image(image_dir, record)
        if source is None:
            summary.missing.append(str(record.get("file_name") or image_id))
            continue
        name = output_name(record, list(suffixes), image_format)
        if name in used:  # two records with one base name (different folders): keep both
            name = output_name(record, [*suffixes, str(image_id)], image_format)
        used.add(name)
        instances = filter_instances(aset.instances.get(image_id, []), category_ids)
        jobs.append(
            _Job(
                image_id=image_id,
                source=str(source),
                height=int(record["height"]),
                width=int(record["width"]),
                instances=instances,
                out_path=str(output / name),
                thumb_path=str(output / "thumbs" / name) if thumbnails else None,
            )
        )
    options = _Options(aset.names, draw_labels, alpha, outline, quality)
    start = time.perf_counter()
    outcomes = run_jobs(
        _render_job,
        jobs,
        workers=workers,
        initializer=_init_worker,
        initargs=(options,),
        label="drawing overlays",
        console=console,
    )
    summary.seconds = time.perf_counter() - start
    for job, outcome in zip(jobs, outcomes):
        summary.bad_instances.extend(outcome.problems)
        if outcome.status == "ok":
            summary.written.append(Path(job.out_path))
            summary.instances_drawn += outcome.drawn
            summary.outcomes.append(outcome)
        else:
            summary.failed.append((Path(job.source).name, outcome.message))
    return summary
