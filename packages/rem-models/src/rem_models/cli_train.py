"""`rem train MODEL`: train a registered architecture on a COCO / LVIS / COCO-ReM file.

Several GPUs or nodes: ``torchrun --nproc-per-node=8 $(which rem) train MODEL ...`` (one
process per GPU; ``--set batch_size=`` stays the global batch). With ``--refs`` a referring
model (LAVT) trains on referring expressions with its own recipe instead.
"""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError


@click.command(name="train")
@click.argument("model")
@click.option(
    "--train-json",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO-style instances file (COCO, LVIS, COCO-ReM). Required unless --refs.",
)
@click.option(
    "--image-dir",
    "--images",
    "image_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder the file's image file_names are relative to.",
)
@click.option(
    "--eval-json",
    type=click.Path(path_type=Path),
    default=None,
    help="Held-out instances file, evaluated every eval_every steps and at the end.",
)
@click.option(
    "--eval-image-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Image folder of --eval-json (default: --image-dir).",
)
@click.option(
    "--refs",
    type=click.Path(path_type=Path),
    default=None,
    help="Train a referring model (LAVT) on these referring expressions (refer refs(*).p "
    "or rem referring JSON) instead of an instances file.",
)
@click.option("--split", default="train", show_default=True, help="With --refs: the split.")
@click.option(
    "--instances",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs: the instances.json of a refer refs(*).p (default: beside it).",
)
@click.option(
    "--init-swin",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs: classification Swin weights for the backbone.",
)
@click.option("--init-bert", default=None, help="With --refs: BERT name or folder.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a train config field (steps=, lr=, augment.image_size=...) or a "
    "model field (model.KEY=VALUE). Repeatable.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("rem-train"),
    show_default=True,
    help="Output folder (snapshots, metrics.jsonl, final weights).",
)
@click.option("--resume", is_flag=True, help="Continue from the newest snapshot in --out.")
@click.option(
    "--init",
    type=click.Path(path_type=Path),
    default=None,
    help="Initial weights (rem safetensors or released file); mismatched heads skip.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
def train(
    model: str,
    train_json: Path | None,
    image_dir: Path,
    eval_json: Path | None,
    eval_image_dir: Path | None,
    refs: Path | None,
    split: str,
    instances: Path | None,
    init_swin: Path | None,
    init_bert: str | None,
    overrides: tuple[str, ...],
    out_dir: Path,
    resume: bool,
    init: Path | None,
    seed: int,
    device: str | None,
) -> None:
    """Train MODEL; writes OUT/model_final.safetensors for `rem predict`."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if refs is not None:
        from rem_models.lavt.train_run import train_referring_run

        final = train_referring_run(
            model,
            refs,
            image_dir,
            out_dir,
            split=split,
            instances=instances,
            overrides=(f"seed={seed}", *overrides),  # a --set seed= still wins
            init_swin=init_swin,
            init_bert=init_bert,
            device=device,
            resume=resume,
        )
        click.echo(f"trained {model}: {final}")
        return
    if train_json is None:
        raise RemError("give --train-json (an instances file) or --refs", where="rem train")

    from rem_models.engine.run_train import train_run

    result = train_run(
        model,
        train_json,
        image_dir,
        out_dir,
        overrides=overrides,
        seed=seed,
        device=device,
        resume=resume,
        eval_json=eval_json,
        eval_image_dir=eval_image_dir,
        init=init,
    )
    click.echo(f"trained {model} to step {result.steps} in {result.seconds:.1f} s: {out_dir}")
