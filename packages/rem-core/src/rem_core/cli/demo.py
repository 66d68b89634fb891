"""`rem demo`: make a synthetic sample, check it, summarise it, then run the installed steps.

With only rem-core installed the demo stops after the summary; each installed rem package adds its
part (refine, evaluate, visualise...) through the ``rem.demo_steps`` entry points.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import TimeElapsedColumn
from rich.table import Table

from rem_core.demo import DEMO_STEPS_GROUP, DemoContext, DemoStep, demo_steps
from rem_core.errors import RemError
from rem_core.progress import progress_bar
from rem_core.synth.sample import SynthSample, make_sample
from rem_core.synth.summary import SampleSummary, summarize


def _validate_sample(sample: SynthSample) -> list[str]:
    """Check the written files against the schemas and their cross references; one line each."""
    import orjson
    from pydantic import ValidationError

    from rem_core.schemas import CocoDataset, Results

    lines = []
    for path in (sample.exact, sample.coarse):
        raw = orjson.loads(path.read_bytes())
        try:
            dataset = CocoDataset.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RemError(first["msg"], path=path, where=where) from None
        image_ids = {img.id for img in dataset.images}
        cat_ids = {cat.id for cat in dataset.categories}
        for i, ann in enumerate(dataset.annotations):
            if ann.image_id not in image_ids or ann.category_id not in cat_ids:
                raise RemError(
                    "refers to an image or category that is not in the file",
                    path=path,
                    where=f"annotations[{i}]",
                )
        lines.append(
            f"{path.name}: {len(dataset.images)} images, {len(dataset.annotations)} annotations ok"
        )
    raw = orjson.loads(sample.predictions.read_bytes())
    try:
        results = Results.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RemError(first["msg"], path=sample.predictions, where=where) from None
    lines.append(f"{sample.predictions.name}: {len(results.root)} detections ok")
    return lines


def _installed_steps() -> tuple[list[tuple[str, DemoStep]], list[tuple[str, str]]]:
    """``(steps, broken)``: the loadable demo steps in order, and (name, reason) for those whose
    package fails to import, so one broken package does not hide the others' steps."""
    try:
        return demo_steps(), []
    except Exception:
        pass
    from importlib.metadata import entry_points

    steps, broken = [], []
    for ep in sorted(entry_points(group=DEMO_STEPS_GROUP), key=lambda e: e.name):
        try:
            steps.append((ep.name, ep.load()))
        except Exception as exc:
            broken.append((ep.name, f"{ep.value}: {type(exc).__name__}: {exc}".splitlines()[0]))
    return steps, broken


def _summary_table(s: SampleSummary) -> Table:
    table = Table(title="synthetic sample", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("images", str(s.images))
    table.add_row("images without annotations", str(s.images_without_annotations))
    table.add_row("instances", str(s.instances))
    table.add_row("crowd regions", str(s.crowd))
    table.add_row("categories", str(s.categories))
    table.add_row("predictions", str(s.predictions))
    table.add_row("mean mask IoU, coarse vs exact", f"{s.mean_mask_iou:.3f}")
    table.add_row("mean Boundary IoU, coarse vs exact", f"{s.mean_boundary_iou:.3f}")
    return table


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("rem-demo"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--num-images", "-n", default=8, show_default=True, help="Synthetic images.")
@click.option("--device", default="cpu", show_default=True, help="Device for model steps.")
def demo(out: Path, seed: int, num_images: int, device: str) -> None:
    """Run rem end to end on a small synthetic sample (well under a minute on a CPU)."""
    console = Console()
    started = time.perf_counter()
    console.rule("[bold]rem demo: synthetic sample")
    with progress_bar(console, tail=(TimeElapsedColumn(),), transient=True) as progress:
        task = progress.add_task("drawing images", total=num_images)
        sample = make_sample(
            out / "sample",
            num_images=num_images,
            seed=seed,
            on_image=lambda i: progress.advance(task),
        )
    console.print(f"wrote {sample.num_images} images to {sample.image_dir}")
    for line in _validate_sample(sample):
        console.print(f"[green]valid[/green] {line}")
    console.print(_summary_table(summarize(sample.exact, sample.coarse, sample.predictions)))

    ctx = DemoContext(
        out_dir=out,
        seed=seed,
        console=console,
        artifacts={
            "images": sample.image_dir,
            "exact": sample.exact,
            "coarse": sample.coarse,
            "predictions": sample.predictions,
        },
        device=device,
    )
    steps, broken = _installed_steps()
    for name, reason in broken:
        console.print(f"[red]skipping broken demo step {name}[/red]: {reason}")
    if not steps and not broken:
        console.print("no demo steps installed (install rem-refine, rem-eval, rem-viz for more)")
    for name, step in steps:
        console.rule(f"[bold]step {name}")
        t0 = time.perf_counter()
        try:
            step(ctx)
        except RemError:
            raise
        except Exception as exc:
            raise click.ClickException(
                f"demo step {name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        console.print(f"step {name} done in {time.perf_counter() - t0:.1f} s")

    console.rule("[bold]written")
    table = Table(show_header=True)
    table.add_column("artifact")
    table.add_column("path", overflow="fold")
    for name, path in ctx.artifacts.items():
        table.add_row(name, str(path))
    console.print(table)
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s")
    if broken:
        raise click.ClickException(
            f"{len(broken)} demo step(s) could not be loaded: {', '.join(n for n, _ in broken)}"
        )
