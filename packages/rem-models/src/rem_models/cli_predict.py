"""`rem predict MODEL`: run trained or converted weights over images, write COCO results.

With ``--refs`` the model is a referring one (LAVT, SeqTR; its family's
``predict_referring_run``, see :mod:`rem_models.family_hooks`): every sentence of the refs
file is predicted and a referring results file is written instead.
"""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError
from rem_models.cli_options import device_option, refer_instances_option, resolve_device


@click.command(name="predict")
@click.argument("model")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(path_type=Path),
    help="rem safetensors (train / convert-checkpoint output) or a training snapshot.",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(path_type=Path),
    help="A folder of images or a COCO file listing them (then give --image-dir). "
    "With --refs: the image folder.",
)
@click.option(
    "--image-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of the images named in a COCO --images file.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Results JSON (COCO results: XYWH boxes, compressed RLE masks).",
)
@click.option(
    "--categories",
    "categories_file",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO file whose categories are the model's classes, if the checkpoint "
    "does not store them.",
)
@click.option(
    "--refs",
    type=click.Path(path_type=Path),
    default=None,
    help="Referring expressions (refer refs(*).p, rem referring JSON or, for SeqTR, its "
    "instances.json): predict every sentence (referring models: LAVT, SeqTR).",
)
@click.option("--split", default=None, help="With --refs: keep one split (val, testA...).")
@refer_instances_option
@click.option(
    "--mask-size",
    type=click.Choice(["original", "input"]),
    default="original",
    show_default=True,
    help="With --refs: masks at the original image size or at the network input size.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="model.KEY=VALUE",
    help="Override an inference-time model config field. Repeatable.",
)
@click.option("--score-threshold", type=float, default=0.0, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--no-amp", is_flag=True, help="Full precision on CUDA (default: bf16 autocast).")
@device_option
def predict(
    model: str,
    checkpoint: Path,
    images: Path,
    image_dir: Path | None,
    out: Path,
    categories_file: Path | None,
    refs: Path | None,
    split: str | None,
    instances: Path | None,
    mask_size: str,
    overrides: tuple[str, ...],
    score_threshold: float,
    batch_size: int,
    no_amp: bool,
    device: str | None,
) -> None:
    """Predict instances on IMAGES with MODEL weights from --checkpoint."""

    device = resolve_device(device)
    if refs is not None:
        from rem_models.family_hooks import call_hook, referring_hook

        hook = referring_hook(model, "predict")
        if hook is None:
            raise RemError(f"{model} does not predict referring expressions", where="--refs")
        given = {"overrides": overrides, "amp": False if no_amp else None}
        call_hook(
            hook,
            model,
            (checkpoint, refs, out),
            {
                "image_dir": images,
                "split": split,
                "instances": instances,
                "device": device,
                "batch_size": batch_size,
                "mask_size": mask_size,
            },
            {k: v for k, v in given.items() if v or v is False},
        )
        return

    from rem_models.engine.run_predict import predict_run

    predict_run(
        model,
        checkpoint,
        images,
        out,
        image_dir=image_dir,
        overrides=overrides,
        categories_file=categories_file,
        device=device,
        batch_size=batch_size,
        score_threshold=score_threshold,
        amp=not no_amp,
    )
