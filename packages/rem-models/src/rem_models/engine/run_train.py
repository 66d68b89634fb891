"""``rem train`` as a function: resolve configs, build data and model, train, export.

The output folder is self-describing: ``run.json`` (architecture, model and train configs,
categories, seed, data paths), ``metrics.jsonl``, ``checkpoints/snapshot_*.pt`` and, at the end,
``model_final.safetensors`` (weights + config + categories, what ``rem predict`` reads). With
``resume`` the configs of ``run.json`` are the starting point and ``--set`` items change them
(e.g. ``steps=`` to train longer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError
from rem_core.io import load_coco
from rem_models.checkpoints import load_state_dict_file, save_checkpoint_safetensors
from rem_models.engine.categories import CATEGORIES_KEY, CategoryMap
from rem_models.engine.config import TrainConfig
from rem_models.engine.dataset import CocoInstances, ImageFiles
from rem_models.engine.distributed import init_distributed
from rem_models.engine.evaluation import Evaluator
from rem_models.engine.trainer import Trainer, TrainResult, seed_everything
from rem_models.overrides import override_config, parse_overrides
from rem_models.registry import ModelConfig, get_model, get_model_entry

RUN_FILE = "run.json"
FINAL_WEIGHTS = "model_final.safetensors"


def split_overrides(items: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` items as (model overrides, train overrides): ``model.`` keys go to the model."""
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    for key, value in parse_overrides(items).items():
        if key.startswith("model."):
            model[key.removeprefix("model.")] = value
        else:
            train[key] = value
    return model, train


def resolve_configs(
    arch: str,
    overrides: Sequence[str],
    num_categories: int,
    saved: dict[str, Any] | None = None,
) -> tuple[ModelConfig, TrainConfig]:
    """The model and train configs of a run: defaults (or ``saved``), family recipe, ``--set``.

    A model config with a ``num_classes`` field follows the dataset's category count unless
    ``--set model.num_classes=`` says otherwise (then they must agree).
    """
    entry = get_model_entry(arch)
    model_over, train_over = split_overrides(overrides)
    if saved is not None:
        model_cfg = type(entry.config).model_validate(saved["model_config"])
        train_cfg = TrainConfig.model_validate(saved["train_config"])
    else:
        model_cfg = entry.config.model_copy(deep=True)
        train_cfg = override_config(TrainConfig(), dict(entry.train_defaults))
    model_cfg = override_config(model_cfg, model_over)
    train_cfg = override_config(train_cfg, train_over)
    if "num_classes" in type(model_cfg).model_fields:
        if "num_classes" in model_over:
            if model_over["num_classes"] != num_categories:
                raise RemError(
                    f"model.num_classes={model_over['num_classes']} but the training file has "
                    f"{num_categories} categories",
                    where="--set",
                )
        elif model_cfg.num_classes != num_categories:  # type: ignore[attr-defined]
            model_cfg = override_config(model_cfg, {"num_classes": num_categories})
    return model_cfg, train_cfg


def load_initial_weights(model: nn.Module, path: Path, console: Console) -> None:
    """Start from a checkpoint's weights; tensors whose shape differs (a new head) are skipped."""
    state = load_state_dict_file(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    reshaped = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    result = model.load_state_dict(fitting, strict=False)
    unexpected = sorted(k for k in state if k not in own)
    console.print(
        f"initialised from {path}: {len(fitting)} tensors loaded, {len(reshaped)} skipped "
        f"(shape differs{', e.g. ' + reshaped[0] if reshaped else ''}), "
        f"{len(result.missing_keys) - len(reshaped)} missing, {len(unexpected)} unexpected"
    )


def train_run(
    arch: str,
    train_json: str | Path,
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    eval_json: str | Path | None = None,
    eval_image_dir: str | Path | None = None,
    init: str | Path | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train registered model ``arch`` on a COCO-style file; see the module docstring."""
    console = console or Console(stderr=True, soft_wrap=True)
    out = Path(out_dir)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, dev = init_distributed(device)
    run_file = out / RUN_FILE
    saved = (
        json.loads(run_file.read_text(encoding="utf-8")) if resume and run_file.is_file() else None
    )
    if saved is not None and saved.get("arch") != arch:
        raise RemError(f"{out} holds a run of {saved.get('arch')!r}, not {arch!r}", path=run_file)

    coco = load_coco(train_json)
    categories = CategoryMap.from_categories(coco.categories)
    model_cfg, train_cfg = resolve_configs(arch, overrides, len(categories), saved)
    dataset = CocoInstances(
        coco,
        image_dir,
        categories=categories,
        filter_empty=train_cfg.filter_empty,
        augment=train_cfg.augment,
        seed=seed,
    )
    if not len(dataset):
        raise RemError("no training image has a usable instance", path=train_json)
    if info.is_main:
        for warning in dataset.stats.warnings():
            console.print(f"[yellow]warning:[/] {train_json}: {warning}")
        console.print(
            f"{arch}: {len(dataset)} images, {dataset.stats.instances} instances, "
            f"{len(categories)} categories; {info.world_size} process(es) on {dev}"
        )
        manifest = {
            "arch": arch,
            "model_config": model_cfg.model_dump(mode="json"),
            "train_config": train_cfg.model_dump(mode="json"),
            "categories": categories.to_records(),
            "seed": seed,
            "train_json": str(train_json),
            "image_dir": str(image_dir),
            "eval_json": None if eval_json is None else str(eval_json),
            "world_size": info.world_size,
        }
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_file, json.dumps(manifest, indent=2) + "\n")

    seed_everything(seed)  # identical initial weights in every process
    model = get_model(arch, model_cfg)
    pad = getattr(model, "square_pad", 0) or 0
    aug = train_cfg.augment
    if pad and aug.kind != "none" and aug.image_size > pad:
        raise RemError(
            f"augment.image_size={aug.image_size} is larger than the {pad} px square "
            f"{arch} pads its inputs to; set augment.image_size={pad}",
            where="--set",
        )
    if init is not None and not resume:
        load_initial_weights(model, Path(init), console)

    evaluator = None
    if eval_json is not None:
        eval_coco = load_coco(eval_json)
        eval_images = ImageFiles(eval_coco, eval_image_dir or image_dir)
        evaluator = Evaluator(
            eval_images,
            eval_coco,
            categories,
            batch_size=train_cfg.eval_batch_size,
            amp=train_cfg.amp,
        )

    def export(trained: nn.Module, step: int) -> None:
        path = out / FINAL_WEIGHTS
        save_checkpoint_safetensors(
            path,
            trained.state_dict(),
            model_cfg,
            arch=arch,
            metadata={CATEGORIES_KEY: categories.to_json(), "rem.step": str(step)},
        )
        console.print(f"wrote {path}")

    trainer = Trainer(
        model,
        dataset,
        train_cfg,
        out,
        device=dev,
        seed=seed,
        evaluator=evaluator,
        export=export,
        meta={
            "arch": arch,
            "model_config": model_cfg.model_dump(mode="json"),
            "categories": categories.to_records(),
        },
        console=console,
        dist_info=info,
    )
    try:
        return trainer.run(resume=resume)
    finally:
        if owns_group and info.distributed:
            torch.distributed.destroy_process_group()
