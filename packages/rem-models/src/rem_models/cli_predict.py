"""`rem predict MODEL`: run trained or converted weights over images, write COCO results."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="predict")
@click.argument("model")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="rem safetensors (train / convert-checkpoint output) or a training snapshot.")
@click.option("--images", required=True, type=click.Path(path_type=Path),
              help="A folder of images or a COCO file listing them (then give --image-dir).")
@click.option("--image-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of the images named in a COCO --images file.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Results JSON (COCO results: XYWH boxes, compressed RLE masks).")
@click.option("--categories", "categories_file", type=click.Path(path_type=Path), default=None,
              help="COCO file whose categories are the model's classes, if the checkpoint "
                   "does not store them.")
@click.option("--set", "overrides", multiple=True, metavar="model.KEY=VALUE",
              help="Override an inference-time model config field. Repeatable.")
@click.option("--score-threshold", type=float, default=0.0, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--no-amp", is_flag=True, help="Full precision on CUDA (default: bf16 autocast).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
def predict(
    model: str,
    checkpoint: Path,
    images: Path,
    image_dir: Path | None,
    out: Path,
    categories_file: Path | None,
    overrides: tuple[str, ...],
    score_threshold: float,
    batch_size: int,
    no_amp: bool,
    device: str | None,
) -> None:
    """Predict instances on IMAGES with MODEL weights from --checkpoint."""
    import torch

    from rem_models.engine.run_predict import predict_run

    predict_run(
        model,
        checkpoint,
        images,
        out,
        image_dir=image_dir,
        overrides=overrides,
        categories_file=categories_file,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        batch_size=batch_size,
        score_threshold=score_threshold,
        amp=not no_amp,
    )
