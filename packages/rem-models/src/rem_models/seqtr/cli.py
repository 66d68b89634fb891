"""``rem seqtr ...``: SeqTR conversion, training, prediction and the Partial-RES steps.

Partial-RES as commands:
  1. ``rem seqtr train --model seqtr_rec ...``                     (REC, boxes of all entries)
  2. ``rem seqtr sample-masks instances.json --ratio 0.01``        (1/5/10% of masks, seeded)
     ``rem seqtr train --model seqtr_res --data instances_sample_0.01.json --init rec.safetensors``
  3. ``rem seqtr predict --split train_unsampled ...`` then ``rem seqtr select-pseudo ...`` (RPP)
     and ``rem seqtr train --model seqtr_res --data instances_sample_0.01_bbox_pick.json
     --init rec.safetensors``.
Torch is imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

_PATH = click.Path(path_type=Path)
_EXISTING = click.Path(exists=True, path_type=Path)


@click.group("seqtr")
def seqtr() -> None:
    """SeqTR / Partial-RES: convert, train, predict, sample masks, select pseudo masks."""


@seqtr.command("convert")
@click.argument("source", type=_EXISTING)
@click.argument("dest", type=_PATH)
@click.option("--base", default=None, help="registered model whose config fills the rest")
def convert(source: Path, dest: Path, base: str | None) -> None:
    """Convert a SeqTR .pth (EMA weights preferred) to a rem safetensors checkpoint."""
    from rem_models.registry import get_model_config
    from rem_models.seqtr.convert import convert_seqtr_file

    config = get_model_config(base) if base else None
    path, counts = convert_seqtr_file(source, dest, config, arch=base)
    from rem_models.checkpoints import load_checkpoint_safetensors

    cfg = load_checkpoint_safetensors(path).config or {}
    ray = f", num_ray {cfg['num_ray']}" if cfg.get("task") == "mask" else ""
    click.echo(f"task {cfg.get('task')}{ray}, vocabulary {cfg['language']['vocab_size']} words")
    for name, n in counts.items():
        click.echo(f"  {name:24s} {n:>12,d} parameters")
    click.echo(f"wrote {path}")


@seqtr.command("train")
@click.option("--model", "arch", default="seqtr_rec", show_default=True)
@click.option("--data", type=_EXISTING, required=True, help="instances.json, refs(*).p or rem JSON")
@click.option("--images", type=_EXISTING, required=True, help="image folder")
@click.option("--out", type=_PATH, required=True, help="output .safetensors")
@click.option(
    "--run-dir",
    type=_PATH,
    default=None,
    help="run folder (run.json, metrics, snapshots) [default: OUT without suffix + '_run']",
)
@click.option("--resume", is_flag=True, help="continue the run in --run-dir exactly")
@click.option("--split", default="train", show_default=True)
@click.option("--init", type=_EXISTING, default=None, help="rem checkpoint to start from")
@click.option("--vectors", type=_EXISTING, default=None, help="GloVe-format word vectors")
@click.option("--darknet", type=_EXISTING, default=None, help="Darknet .weights backbone init")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--no-lsj", is_flag=True, help="test-time resize instead of large-scale jitter")
@click.option("--no-ema", is_flag=True, help="save the raw weights instead of their EMA")
@click.option("--seed", type=int, default=None, help="[default: 0; a resumed run keeps its own]")
@click.option("--device", default="cpu", show_default=True)
@click.option("--set", "sets", multiple=True, help="model config override key=value")
def train(
    arch: str,
    data: Path,
    images: Path,
    out: Path,
    run_dir: Path | None,
    resume: bool,
    split: str,
    init: Path | None,
    vectors: Path | None,
    darknet: Path | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    no_lsj: bool,
    no_ema: bool,
    seed: int | None,
    device: str,
    sets: tuple[str, ...],
) -> None:
    """Train SeqTR (box or mask task) with SeqTR's recipe; saves the EMA weights.

    The same run as ``rem train MODEL --refs DATA --images IMAGES`` (which takes train
    settings as ``--set KEY=VALUE`` and model fields as ``--set model.KEY=VALUE``).
    """
    from rem_models.seqtr.train_run import train_referring_run

    over = [f"model.{item}" for item in sets]
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed)):
        if value is not None:
            over.append(f"{key}={value}")
    over += ["lsj=false"] * no_lsj + ["ema=false"] * no_ema
    path = train_referring_run(
        arch,
        data,
        images,
        run_dir or out.with_name(f"{out.stem}_run"),
        split=split,
        overrides=over,
        init=init,
        vectors=vectors,
        darknet=darknet,
        device=device,
        resume=resume,
        final=out,
    )
    click.echo(f"wrote {path}")


@seqtr.command("predict")
@click.option("--checkpoint", type=_EXISTING, required=True)
@click.option("--data", type=_EXISTING, required=True)
@click.option("--images", type=_EXISTING, required=True)
@click.option("--out", type=_PATH, required=True)
@click.option("--split", default="val", show_default=True)
@click.option(
    "--mask-frame",
    type=click.Choice(["original", "input"]),
    default="original",
    show_default=True,
    help="input = SeqTR's padded 640 frame (legacy-seqtr preset)",
)
@click.option("--all-sentences", is_flag=True, help="one prediction per expression")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def predict(
    checkpoint, data, images, out, split, mask_frame, all_sentences, batch_size, device
) -> None:
    """Predict boxes or masks; prints box Acc@0.5 (SeqTR's DetACC)."""
    from rem_models.seqtr.pipeline import load_items
    from rem_models.seqtr.predict import box_accuracy, predict_referring_run

    preds = predict_referring_run(
        None,
        checkpoint,
        data,
        out,
        image_dir=images,
        split=split,
        mask_size=mask_frame,
        all_sentences=all_sentences,
        batch_size=batch_size,
        device=device,
    )
    if mask_frame == "original":
        acc = box_accuracy(preds, load_items(data, split))
        click.echo(f"{len(preds)} predictions; box Acc@0.5 {100 * acc:.2f}")
    click.echo(f"wrote {out}")


@seqtr.command("sample-masks")
@click.argument("data", type=_EXISTING)
@click.option("--ratio", type=float, required=True, help="share of masks kept: 0.01, 0.05, 0.1")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out-dir", type=_PATH, default=Path("."), show_default=True)
def sample_masks(data, ratio, seed, out_dir) -> None:
    """Partial-RES step 2 input: instances_sample_{ratio}.json (deterministic by seed)."""
    from rem_models.seqtr.pipeline import sample_run

    out_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"wrote {sample_run(data, out_dir, ratio, seed)}")


@seqtr.command("select-pseudo")
@click.argument("sample_file", type=_EXISTING)
@click.argument("predictions", type=_EXISTING)
@click.option("--out", type=_PATH, required=True, help="instances_sample_{r}_bbox_pick.json")
@click.option("--threshold", type=float, default=0.1, show_default=True)
def select_pseudo(sample_file, predictions, out, threshold) -> None:
    """Partial-RES step 3: keep pseudo masks whose projection term vs the GT box < threshold."""
    from rem_models.seqtr.pipeline import select_run

    path, kept, total = select_run(sample_file, predictions, out, threshold=threshold)
    click.echo(f"kept {kept} of {total} pseudo masks; wrote {path}")
