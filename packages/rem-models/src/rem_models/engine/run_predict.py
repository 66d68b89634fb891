"""``rem predict`` as a function: a checkpoint and images in, a COCO results file out.

The checkpoint is a rem safetensors file (``model_final.safetensors`` of ``rem train`` or the
output of ``rem convert-checkpoint``) or a training snapshot. Labels are mapped back to the
dataset's category ids through the mapping stored with the weights; without one, the
categories of the images' COCO file (when their count matches) or the 80 COCO categories (for
an 80-class model) are used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from rem_core.errors import RemError
from rem_core.io import load_coco, save_json
from rem_core.progress import progress_bar
from rem_models.checkpoints import guess_format, load_checkpoint_safetensors
from rem_models.engine.categories import CATEGORIES_KEY, CategoryMap
from rem_models.engine.dataset import ImageFiles, image_size
from rem_models.engine.inference import predict_dataset
from rem_models.engine.run_train import split_overrides
from rem_models.engine.training_state import load_snapshot
from rem_models.overrides import override_config
from rem_models.registry import ModelConfig, get_model, get_model_entry


@dataclass
class LoadedModel:
    """A model ready for inference, with its config and (if stored) its category mapping."""

    model: nn.Module
    config: ModelConfig
    categories: CategoryMap | None


def _num_classes(config: ModelConfig) -> int | None:
    return getattr(config, "num_classes", None)


def load_for_inference(
    arch: str, checkpoint: str | Path, overrides: Sequence[str] = ()
) -> LoadedModel:
    """Build ``arch`` from ``checkpoint`` (rem safetensors or training snapshot) in eval mode.

    ``overrides`` are ``model.key=value`` items for inference-time fields (e.g. a score
    threshold); shape-changing ones make the strict weight load fail with a RemError.
    """
    path = Path(checkpoint)
    entry = get_model_entry(arch)
    config_type = type(entry.config)
    model_over, other = split_overrides(overrides)
    if other:
        raise RemError(
            f"predict takes model.* keys only, got {', '.join(sorted(other))}", where="--set"
        )
    if guess_format(path) == "safetensors":
        saved = load_checkpoint_safetensors(path)
        stored_arch, config_dict, state = saved.arch, saved.config, saved.state_dict
        categories_json = saved.metadata.get(CATEGORIES_KEY)
    else:
        snap = load_snapshot(path)
        meta = json.loads(snap.get("meta") or "{}")
        stored_arch, state = meta.get("arch"), snap["model"]
        config_dict = meta.get("model_config")
        categories_json = json.dumps(meta["categories"]) if "categories" in meta else None
        if config_dict is None:
            run_file = path.parent.parent / "run.json"
            if run_file.is_file():
                config_dict = json.loads(run_file.read_text(encoding="utf-8"))["model_config"]
    if stored_arch is not None and stored_arch != arch:
        raise RemError(f"checkpoint is a {stored_arch!r} model, not {arch!r}", path=path)
    config = entry.config if config_dict is None else config_type.model_validate(config_dict)
    config = override_config(config, model_over)
    model = get_model(arch, config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise RemError(f"weights do not fit {arch!r}: {' '.join(first[:3])}", path=path) from None
    model.eval()
    categories = CategoryMap.from_json(categories_json) if categories_json else None
    return LoadedModel(model, config, categories)


def pick_categories(
    loaded: LoadedModel, images: ImageFiles, categories_file: str | Path | None
) -> CategoryMap:
    """The label -> category mapping: stored, else ``--categories``, else guessed (see module)."""
    if loaded.categories is not None:
        return loaded.categories
    n = _num_classes(loaded.config)
    if categories_file is not None:
        found = CategoryMap.from_categories(load_coco(categories_file).categories)
    elif (
        images.coco is not None
        and images.coco.categories
        and (n is None or len(images.coco.categories) == n)
    ):
        found = CategoryMap.from_categories(images.coco.categories)
    elif n == 80:
        from rem_core.synth.coco_categories import coco_category_dicts

        found = CategoryMap.from_categories(coco_category_dicts())
    else:
        raise RemError(
            "the checkpoint stores no category mapping; pass --categories FILE (a COCO file "
            "whose categories, sorted by id, are the model's classes)"
        )
    if n is not None and len(found) != n:
        raise RemError(f"{len(found)} categories given for a model with {n} classes")
    return found


def predict_run(
    arch: str,
    checkpoint: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    image_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    categories_file: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 1,
    score_threshold: float = 0.0,
    amp: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Predict every image of ``images`` (a folder or a COCO file) and write COCO results.

    For a folder, image ids are 1, 2, ... in file-name order and the image list is written
    beside the results as ``<out>.images.json`` (a COCO file without annotations).
    """
    console = console or Console(stderr=True, soft_wrap=True)
    dev = torch.device(device)
    loaded = load_for_inference(arch, checkpoint, overrides)
    dataset = ImageFiles(images, image_dir)
    categories = pick_categories(loaded, dataset, categories_file)
    loaded.model.to(dev)
    progress = progress_bar(console, "[bold]predict")
    with progress:
        task = progress.add_task("predict", total=len(dataset))
        results = predict_dataset(
            loaded.model,
            dataset,
            categories,
            dev,
            batch_size=batch_size,
            amp=amp,
            score_threshold=score_threshold,
            on_batch=lambda n: progress.advance(task, n),
        )
    out = Path(out)
    save_json(out, results)
    if dataset.coco is None:
        listing = {
            "images": [
                {"id": e["image_id"], "file_name": e["file_name"], **image_size(e["path"])}
                for e in dataset.entries
            ],
            "categories": categories.to_records(),
        }
        save_json(out.with_name(out.stem + ".images.json"), listing)
    console.print(f"wrote {len(results)} detections on {len(dataset)} images to {out}")
    return results
