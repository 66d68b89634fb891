"""`rem train MODEL`: train a registered architecture on a COCO / LVIS / COCO-ReM file.

Several GPUs or nodes: ``torchrun --nproc-per-node=8 $(which rem) train MODEL ...`` (one
process per GPU; ``--set batch_size=`` stays the global batch).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="train")
@click.argument("model")
@click.option("--train-json", required=True, type=click.Path(path_type=Path),
              help="COCO-style instances file (COCO, LVIS, COCO-ReM).")
@click.option("--image-dir", required=True, type=click.Path(path_type=Path),
              help="Folder the file's image file_names are relative to.")
@click.option("--eval-json", type=click.Path(path_type=Path), default=None,
              help="Held-out instances file, evaluated every eval_every steps and at the end.")
@click.option("--eval-image-dir", type=click.Path(path_type=Path), default=None,
              help="Image folder of --eval-json (default: --image-dir).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a train config field (steps=, lr=, augment.image_size=...) or a "
                   "model field (model.KEY=VALUE). Repeatable.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("rem-train"),
              show_default=True, help="Output folder (snapshots, metrics.jsonl, final weights).")
@click.option("--resume", is_flag=True, help="Continue from the newest snapshot in --out.")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Initial weights (rem safetensors or released file); mismatched heads skip.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
def train(
    model: str,
    train_json: Path,
    image_dir: Path,
    eval_json: Path | None,
    eval_image_dir: Path | None,
    overrides: tuple[str, ...],
    out_dir: Path,
    resume: bool,
    init: Path | None,
    seed: int,
    device: str | None,
) -> None:
    """Train MODEL; writes OUT/model_final.safetensors for `rem predict`."""
    import torch

    from rem_models.engine.run_train import train_run

    result = train_run(
        model,
        train_json,
        image_dir,
        out_dir,
        overrides=overrides,
        seed=seed,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        resume=resume,
        eval_json=eval_json,
        eval_image_dir=eval_image_dir,
        init=init,
    )
    click.echo(f"trained {model} to step {result.steps} in {result.seconds:.1f} s: {out_dir}")
