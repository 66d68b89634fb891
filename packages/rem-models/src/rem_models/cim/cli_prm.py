"""``rem cim prm-train`` and ``rem cim peaks``: a PRM from image labels, then its class peaks.

The peaks file (:class:`rem_core.schemas.PeakSet`) feeds ``rem cim train --peaks`` (the PCL
term). Heavy modules are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command("prm-train")
@click.argument("gt", type=_FILE)
@click.argument("image_dir", type=_DIR)
@click.argument("out", type=_OUT)
@click.option("--model", "model_name", default="prm_r50", show_default=True)
@click.option("--set", "overrides", multiple=True, help="Model config override KEY=VALUE.")
@click.option("--init", "init", type=_FILE, help="torchvision ResNet-50 ImageNet weights.")
@click.option("--iterations", default=13_000, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=0.01, show_default=True, help="Classifier lr (backbone x0.01).")
@click.option("--backbone-lr-factor", default=0.01, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def prm_train(
    gt,
    image_dir,
    out,
    model_name,
    overrides,
    init,
    iterations,
    batch_size,
    lr,
    backbone_lr_factor,
    seed,
    device,
) -> None:
    """Train a PRM on GT's image-level labels; save a safetensors checkpoint to OUT."""
    import torch
    from rich.console import Console

    from rem_core.io import load_coco
    from rem_core.progress import progress_bar
    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.cim.dataset import category_order
    from rem_models.cim.prm import PrmModel, load_imagenet_backbone
    from rem_models.cim.prm_train import PrmTrainSettings, labelled_images, train_prm
    from rem_models.overrides import apply_overrides
    from rem_models.registry import get_model, get_model_config

    coco = load_coco(gt)
    cats = category_order(coco)
    config = apply_overrides(get_model_config(model_name, num_classes=len(cats)), list(overrides))
    torch.manual_seed(seed)
    model = get_model(model_name, config)
    if not isinstance(model, PrmModel):
        raise RemError(f"{model_name} is not a PRM model (try prm_r50)", where="--model")
    if init is not None:
        if config.backbone != "resnet50":
            raise RemError(
                "--init loads ResNet-50 weights; this PRM has another backbone", where="--init"
            )
        load_imagenet_backbone(model, init)
    images = labelled_images(coco, image_dir)
    if not images:
        raise RemError("the GT file lists no images", path=gt)
    settings = PrmTrainSettings(
        iterations=iterations,
        batch_size=batch_size,
        lr=lr,
        backbone_lr_factor=backbone_lr_factor,
        seed=seed,
    )
    with progress_bar(Console(stderr=True)) as progress:
        task = progress.add_task("PRM training", total=iterations)

        def on_step(it: int, loss: float) -> None:
            progress.update(task, advance=1, description=f"PRM loss {loss:.3f}")

        history = train_prm(model.to(device), images, settings, on_step=on_step)
    save_checkpoint_safetensors(
        out,
        model.state_dict(),
        config,
        arch=model_name,
        metadata={"rem.categories": ",".join(map(str, cats))},
    )
    click.echo(f"trained PRM {iterations} iterations (last loss {history[-1]:.4f}) -> {out}")


def _checkpoint_categories(checkpoint: Path) -> list[int]:
    from rem_models.checkpoints import load_checkpoint_safetensors

    text = load_checkpoint_safetensors(checkpoint).metadata.get("rem.categories", "")
    try:
        return [int(c) for c in text.split(",") if c]
    except ValueError:
        raise RemError(f"bad rem.categories metadata {text!r}", path=checkpoint) from None


@click.command("peaks")
@click.argument("checkpoint", type=_FILE)
@click.argument("gt", type=_FILE)
@click.argument("image_dir", type=_DIR)
@click.argument("out", type=_OUT)
@click.option("--threshold", default=10.0, show_default=True, help="Peak response threshold.")
@click.option("--device", default="cpu", show_default=True)
def peaks(checkpoint, gt, image_dir, out, threshold, device) -> None:
    """Class peaks of a PRM CHECKPOINT for GT's image-level labels, written to OUT."""
    from rich.progress import track

    from rem_core.io import load_coco
    from rem_models.checkpoints import build_from_checkpoint
    from rem_models.cim.dataset import read_rgb
    from rem_models.cim.peaks import image_peaks
    from rem_models.cim.peaks_io import peak_record, save_peaks
    from rem_models.cim.prm import PrmModel, preprocess
    from rem_models.engine.dataset import image_path

    model = build_from_checkpoint(checkpoint)
    if not isinstance(model, PrmModel):
        raise RemError("not a PRM checkpoint (train one with `rem cim prm-train`)", path=checkpoint)
    model = model.to(device).eval()
    cats = _checkpoint_categories(checkpoint) or list(range(1, model.classifier.out_channels + 1))
    index = {cat: c for c, cat in enumerate(cats)}
    coco = load_coco(gt)
    records = []
    for image_id in track(sorted(coco.imgs), description="peaks"):
        info = coco.imgs[image_id]
        classes = set()
        for ann in coco.img_to_anns.get(image_id, []):
            if ann["category_id"] not in index:
                raise RemError(
                    f"category {ann['category_id']} is unknown to the PRM checkpoint",
                    path=gt,
                    where=f"annotation id {ann['id']}",
                )
            classes.add(index[ann["category_id"]])
        found = []
        if classes:
            image = read_rgb(image_path(info, image_dir, f"image id {image_id}", gt))
            found = image_peaks(
                model, preprocess(image, model.input_size), sorted(classes), threshold
            )
        records.append(
            peak_record(image_id, info["height"], info["width"], found, model.frame_size, cats)
        )
    save_peaks(out, records, "prm", model.frame_size)
    total = sum(len(r.peaks) for r in records)
    click.echo(f"wrote {total} peaks for {len(records)} images to {out}")
