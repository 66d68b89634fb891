"""`rem train MODEL`: train a registered architecture on a COCO / LVIS / COCO-ReM file.

Several GPUs or nodes: ``torchrun --nproc-per-node=8 $(which rem) train MODEL ...`` (one
process per GPU; ``--set batch_size=`` stays the global batch). With ``--refs`` a referring
model (LAVT, SeqTR, Partial-RES) trains on referring expressions with its family's own recipe
instead (see :mod:`rem_models.family_hooks`).
"""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError
from rem_models.cli_options import device_option, refer_instances_option, resolve_device


def _saved_seed(out_dir: Path) -> int:
    """The seed a run folder's run.json records (0 when it has none)."""
    import json

    run_file = out_dir / "run.json"
    return (
        int(json.loads(run_file.read_text(encoding="utf-8")).get("seed", 0))
        if run_file.is_file()
        else 0
    )


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
    help="Train a referring model (LAVT, SeqTR) on these referring expressions instead of "
    "an instances file: refer refs(*).p, rem referring JSON, or (SeqTR) SeqTR's own "
    "instances.json {split: [entries]}, told apart by content.",
)
@click.option("--split", default="train", show_default=True, help="With --refs: the split.")
@refer_instances_option
@click.option(
    "--init-swin",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs (LAVT): classification Swin weights for the backbone.",
)
@click.option("--init-bert", default=None, help="With --refs (LAVT): BERT name or folder.")
@click.option(
    "--vectors",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs (SeqTR): GloVe-format word vectors for the word table.",
)
@click.option(
    "--darknet",
    type=click.Path(path_type=Path),
    default=None,
    help="With --refs (SeqTR): Darknet .weights for the DarkNet-53 backbone.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a train config field (steps=, lr=, augment.image_size=...; with --refs "
    "the family's recipe: epochs=, batch_size=, lr=...) or a model field (model.KEY=VALUE). "
    "Repeatable.",
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
    help="Initial weights (rem safetensors or released file); mismatched heads skip. "
    "SeqTR: a REC checkpoint starts RES / Partial-RES (word table and reshaped tensors skip).",
)
@click.option("--seed", type=int, default=None, help="[default: 0; --resume keeps the run's]")
@device_option
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
    vectors: Path | None,
    darknet: Path | None,
    overrides: tuple[str, ...],
    out_dir: Path,
    resume: bool,
    init: Path | None,
    seed: int | None,
    device: str | None,
) -> None:
    """Train MODEL; writes OUT/model_final.safetensors for `rem predict`."""

    from rem_models.family_hooks import call_hook, referring_hook

    device = resolve_device(device)
    referring = referring_hook(model, "train")
    if refs is not None:
        if referring is None:
            raise RemError(f"{model} does not train on referring expressions", where="--refs")
        if eval_json is not None:
            raise RemError("--eval-json applies to instance models, not --refs", where="--refs")
        given = {"init": init, "init_swin": init_swin, "init_bert": init_bert}
        given |= {"vectors": vectors, "darknet": darknet}
        final = call_hook(
            referring,
            model,
            (refs, image_dir, out_dir),
            {
                "split": split,
                "instances": instances,
                # the CLI's --seed first, so a --set seed= still wins
                "overrides": (*([f"seed={seed}"] if seed is not None else []), *overrides),
                "device": device,
                "resume": resume,
            },
            {k: v for k, v in given.items() if v is not None},
        )
        click.echo(f"trained {model}: {final}")
        return
    if referring is not None:
        raise RemError(f"{model} trains on referring expressions: give --refs", where="rem train")
    if train_json is None:
        raise RemError("give --train-json (an instances file) or --refs", where="rem train")

    from rem_models.engine.run_train import train_run

    result = train_run(
        model,
        train_json,
        image_dir,
        out_dir,
        overrides=overrides,
        seed=_saved_seed(out_dir) if seed is None and resume else seed or 0,
        device=device,
        resume=resume,
        eval_json=eval_json,
        eval_image_dir=eval_image_dir,
        init=init,
    )
    click.echo(f"trained {model} to step {result.steps} in {result.seconds:.1f} s: {out_dir}")
