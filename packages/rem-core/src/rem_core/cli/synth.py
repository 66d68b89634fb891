"""`rem synth`: write the synthetic sample, or COCO-scale JSON files for benchmarks."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import TimeElapsedColumn

from rem_core.progress import progress_bar
from rem_core.synth.render import MAX_CATEGORIES

TRAIN_INSTANCES_PER_IMAGE = 860_001 / 118_287


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--num-images", "-n", default=10, show_default=True, help="Images to draw.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--width", default=640, show_default=True, help="Image width in pixels.")
@click.option("--height", default=480, show_default=True, help="Image height in pixels.")
@click.option(
    "--categories",
    "num_categories",
    type=click.IntRange(1, MAX_CATEGORIES),
    default=6,
    show_default=True,
    help="Number of drawn categories.",
)
@click.option(
    "--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True
)
@click.option(
    "--large",
    "large_images",
    type=click.IntRange(min=1),
    default=None,
    help="Instead: write OUT/instances_large.json, a COCO-train-like file (no images) with this "
    "many images (118287 for full COCO train scale).",
)
@click.option(
    "--annotations",
    type=click.IntRange(min=0),
    default=None,
    help="With --large: number of annotations (default: 7.27 per image, as COCO train).",
)
@click.option(
    "--segmentation",
    type=click.Choice(["polygon", "rle", "uncompressed"]),
    default="polygon",
    show_default=True,
    help="With --large: how masks are stored.",
)
@click.option(
    "--eval-benchmark",
    "eval_images",
    type=click.IntRange(min=1),
    default=None,
    help="Instead: write OUT/eval_gt.json and OUT/eval_results.json (100 detections per image) "
    "with this many images (5000 for COCO val scale).",
)
def synth(
    out: Path,
    num_images: int,
    seed: int,
    width: int,
    height: int,
    num_categories: int,
    image_format: str,
    large_images: int | None,
    annotations: int | None,
    segmentation: str,
    eval_images: int | None,
) -> None:
    """Write synthetic data to OUT, deterministically from --seed.

    By default: drawn images with exact masks (exact.json), coarse annotations of the same
    instances (coarse.json) and scored detections (predictions.json).
    """
    console = Console(stderr=True)
    written: list[Path] = []
    if large_images is not None:
        from rem_core.synth.large import write_large_json

        n_anns = (
            round(large_images * TRAIN_INSTANCES_PER_IMAGE) if annotations is None else annotations
        )
        with progress_bar(console, tail=(TimeElapsedColumn(),), transient=True) as progress:
            task = progress.add_task("annotations", total=n_anns)
            written.append(
                write_large_json(
                    out / "instances_large.json",
                    num_images=large_images,
                    num_annotations=n_anns,
                    seed=seed,
                    segmentation=segmentation,
                    on_chunk=lambda done, total: progress.update(task, completed=done),
                )
            )
    if eval_images is not None:
        from rem_core.synth.eval_bench import write_eval_benchmark

        with progress_bar(console, tail=(TimeElapsedColumn(),), transient=True) as progress:
            task = progress.add_task("images", total=eval_images)
            written.extend(
                write_eval_benchmark(
                    out,
                    num_images=eval_images,
                    seed=seed,
                    on_images=lambda done, total: progress.update(task, completed=done),
                )
            )
    if large_images is None and eval_images is None:
        from rem_core.synth.sample import make_sample

        with progress_bar(console, tail=(TimeElapsedColumn(),), transient=True) as progress:
            task = progress.add_task("drawing images", total=num_images)
            sample = make_sample(
                out,
                num_images=num_images,
                seed=seed,
                width=width,
                height=height,
                num_categories=num_categories,
                image_format=image_format,
                on_image=lambda i: progress.advance(task),
            )
        console.print(
            f"{sample.num_images} images, {sample.num_annotations} instances, "
            f"{sample.num_predictions} predictions"
        )
        written += [sample.image_dir, sample.exact, sample.coarse, sample.predictions]
    for path in written:
        click.echo(str(path))
