"""``rem cim``: proposals, training, prediction, pseudo-label export and VOC tools for CIM.

Heavy modules (torch, scikit-image, segment-anything) are imported inside the commands. VOC mask
mAP (mAP25/50/70/75) is rem-eval's: ``rem eval GT RESULTS --voc``.
"""

from __future__ import annotations

from pathlib import Path

import click

from rem_core.errors import RemError
from rem_models.cim.cli_prm import peaks, prm_train

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.group()
def cim() -> None:
    """CIM: weakly supervised instance segmentation from image labels and mask proposals."""


cim.add_command(prm_train)
cim.add_command(peaks)


@cim.command()
@click.argument("gt", type=_FILE)
@click.argument("image_dir", type=_DIR)
@click.argument("out", type=_OUT)
@click.option(
    "--method",
    type=click.Choice(["selective-search", "sam", "cob"]),
    default="selective-search",
    show_default=True,
)
@click.option("--scales", default="100,300", show_default=True, help="Felzenszwalb scales.")
@click.option("--checkpoint", type=_FILE, help="SAM weights (--method sam).")
@click.option("--sam-type", default="vit_h", show_default=True)
@click.option("--points-per-side", default=32, show_default=True)
@click.option("--cob", "cob_file", type=_FILE, help="COB pickle (--method cob).")
@click.option("--device", default="cpu", show_default=True)
def proposals(
    gt, image_dir, out, method, scales, checkpoint, sam_type, points_per_side, cob_file, device
) -> None:
    """Write mask proposals for every image of GT (a COCO file) to OUT."""
    from rich.progress import track

    from rem_core.io import load_coco
    from rem_models.cim.dataset import read_rgb
    from rem_models.cim.proposals_io import image_proposals, save_proposals
    from rem_models.engine.dataset import image_path

    coco = load_coco(gt)
    if method == "cob":
        from rem_models.cim.cob import cob_to_proposals, read_cob_pickle

        if cob_file is None:
            raise RemError("--method cob needs --cob FILE", where="--cob")
        records = cob_to_proposals(read_cob_pickle(cob_file), coco)
        save_proposals(out, records, "cob")
        click.echo(f"wrote {len(records)} images of COB proposals to {out}")
        return
    if method == "sam":
        from rem_models.cim.sam_proposals import load_sam, sam_everything

        if checkpoint is None:
            raise RemError(
                "--method sam needs --checkpoint FILE (SAM weights)", where="--checkpoint"
            )
        sam = load_sam(checkpoint, sam_type).to(device)

        def generate(image):
            return sam_everything(image, sam, points_per_side=points_per_side)
    else:
        from rem_models.cim.superpixel_proposals import selective_search

        try:
            scale_list = tuple(float(s) for s in scales.split(","))
        except ValueError:
            raise RemError(
                f"expected numbers separated by commas, got {scales!r}", where="--scales"
            ) from None

        def generate(image):
            return selective_search(image, scales=scale_list), None

    records = []
    for image_id in track(sorted(coco.imgs), description="proposals"):
        image = read_rgb(image_path(coco.imgs[image_id], image_dir, f"image id {image_id}", gt))
        masks, scores = generate(image)
        records.append(image_proposals(image_id, masks, scores))
    save_proposals(out, records, method)
    total = sum(len(r.proposals) for r in records)
    click.echo(f"wrote {total} proposals for {len(records)} images to {out}")


def _samples(gt: Path, proposals_file: Path, image_dir: Path, peaks_file: Path | None = None):
    from rem_core.io import load_coco
    from rem_models.cim.dataset import category_order, load_samples
    from rem_models.cim.peaks_io import load_peaks
    from rem_models.cim.proposals_io import load_proposals

    coco = load_coco(gt)
    peaks = None if peaks_file is None else load_peaks(peaks_file, coco, category_order(coco))
    return coco, load_samples(coco, image_dir, load_proposals(proposals_file), peaks=peaks)


@cim.command()
@click.argument("gt", type=_FILE)
@click.argument("proposals_file", metavar="PROPOSALS", type=_FILE)
@click.argument("image_dir", type=_DIR)
@click.argument("out", type=_OUT)
@click.option("--model", "model_name", default="cim_r50", show_default=True)
@click.option("--set", "overrides", multiple=True, help="Model config override KEY=VALUE.")
@click.option("--iterations", default=90_000, show_default=True)
@click.option("--step", default=60_000, show_default=True, help="lr x0.1 from this iteration.")
@click.option("--lr", default=5e-4, show_default=True)
@click.option(
    "--scales",
    default="480,576,688,864,1200",
    show_default=True,
    help="Training long sides; empty keeps the image size.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--peaks",
    "peaks_file",
    type=_FILE,
    help="Peak file (`rem cim peaks`, or points) for the PCL term (x12).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Snapshots + metrics.jsonl [default: OUT without suffix + '.run'].",
)
@click.option("--checkpoint-every", default=5000, show_default=True, help="Snapshot interval.")
@click.option("--resume", is_flag=True, help="Continue from the run folder's newest snapshot.")
@click.option(
    "--backbone-weights",
    type=_FILE,
    help="ImageNet init of the HRNet backbone: the official "
    "hrnetv2_w48_imagenet_pretrained.pth (cim_hrnet48).",
)
def train(
    gt,
    proposals_file,
    image_dir,
    out,
    model_name,
    overrides,
    iterations,
    step,
    lr,
    scales,
    seed,
    device,
    peaks_file,
    run_dir,
    checkpoint_every,
    resume,
    backbone_weights,
) -> None:
    """Train CIM on GT's image-level labels only; save a safetensors checkpoint to OUT.

    Snapshots (every --checkpoint-every iterations and at the end) and metrics.jsonl go to the
    run folder, by default beside OUT (cim.safetensors -> cim.run/); --resume continues there.
    """
    import torch
    from rich.console import Console

    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.cim.dataset import category_order
    from rem_models.cim.train import CimTrainSettings, train_cim
    from rem_models.cim.train_state import CimRun
    from rem_models.overrides import apply_overrides
    from rem_models.registry import get_model, get_model_config

    coco, samples = _samples(gt, proposals_file, image_dir, peaks_file)
    config = get_model_config(model_name, num_classes=len(category_order(coco)))
    config = apply_overrides(config, list(overrides))
    torch.manual_seed(seed)
    model = get_model(model_name, config)
    if backbone_weights is not None:
        from rem_models.cim.hrnet import HRNetCls, load_hrnet_imagenet

        if not isinstance(model.backbone, HRNetCls):
            raise RemError(
                f"{model_name} has a {config.backbone} backbone; ImageNet weights load into "
                "the HRNet backbone only (--model cim_hrnet48)",
                where="--backbone-weights",
            )
        load_hrnet_imagenet(model.backbone, backbone_weights)
    model = model.to(device)
    scale_list = tuple(int(s) for s in scales.split(",") if s.strip())
    settings = CimTrainSettings(
        iterations=iterations, step=step, lr=lr, scales=scale_list, seed=seed
    )
    if peaks_file is not None:
        missing = sum(s.clusters is None for s in samples)
        if missing == len(samples):
            raise RemError("no GT image has a peaks record", path=peaks_file)
        if missing:
            click.echo(
                f"warning: {missing} of {len(samples)} images have no peaks record "
                "(no PCL term for them)",
                err=True,
            )
    run = CimRun(
        run_dir or out.with_name(out.stem + ".run"),
        checkpoint_every=checkpoint_every,
        resume=resume,
        console=Console(stderr=True, soft_wrap=True),
    )
    history = train_cim(model, samples, settings, run=run)
    save_checkpoint_safetensors(
        out,
        model.state_dict(),
        config,
        arch=model_name,
        metadata={"rem.categories": ",".join(map(str, category_order(coco)))},
    )
    last = f" (last loss {history[-1]['total']:.4f})" if history else ""
    click.echo(f"trained {iterations} iterations{last} -> {out}; run folder {run.folder}")


@cim.command()
@click.argument("checkpoint", type=_FILE)
@click.argument("gt", type=_FILE)
@click.argument("proposals_file", metavar="PROPOSALS", type=_FILE)
@click.argument("image_dir", type=_DIR)
@click.argument("out", type=_OUT)
@click.option("--scales", default="", help="Test long sides, e.g. 576,688,864,1200 (CIM).")
@click.option("--flip/--no-flip", default=False, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def predict(checkpoint, gt, proposals_file, image_dir, out, scales, flip, device) -> None:
    """Score GT's images' proposals with a CIM checkpoint; write COCO results to OUT."""
    from rich.progress import track

    from rem_core.io import save_json
    from rem_models.checkpoints import build_from_checkpoint
    from rem_models.cim.dataset import category_order
    from rem_models.cim.inference import predict_sample

    model = build_from_checkpoint(checkpoint).to(device).eval()
    coco, samples = _samples(gt, proposals_file, image_dir)
    scale_list = [int(s) for s in scales.split(",") if s.strip()] or None
    cats = category_order(coco)
    results = []
    for sample in track(samples, description="predicting"):
        if len(sample.masks):
            results.extend(predict_sample(model, sample, cats, scale_list, flip))
    save_json(out, results)
    click.echo(f"wrote {len(results)} detections to {out}")


@cim.command("export")
@click.argument("results", type=_FILE)
@click.argument("gt", type=_FILE)
@click.argument("out", type=_OUT)
@click.option("--min-score", default=0.3, show_default=True)
def export_command(results, gt, out, min_score) -> None:
    """Turn CIM RESULTS into a COCO training file of pseudo-labels (score >= --min-score)."""
    from rem_core.io import load_coco, load_results
    from rem_models.cim.export import export_pseudo_labels

    coco = load_coco(gt)
    count = export_pseudo_labels(load_results(results, coco), coco, out, min_score)
    click.echo(f"wrote {count} pseudo-labels to {out}")


@cim.command("voc-to-coco")
@click.argument("root", type=_DIR)
@click.argument("split", type=_FILE)
@click.argument("out", type=_OUT)
@click.option("--source", type=click.Choice(["voc", "sbd"]), default="voc", show_default=True)
def voc_to_coco_command(root, split, out, source) -> None:
    """Convert VOC2012 (SegmentationObject PNGs) or SBD (inst/cls .mat) instances to COCO."""
    from rem_core.io import save_json
    from rem_models.cim.voc import read_id_list, voc_to_coco

    data = voc_to_coco(root, read_id_list(split), source)
    save_json(out, data)
    click.echo(f"wrote {len(data['images'])} images, {len(data['annotations'])} instances to {out}")
