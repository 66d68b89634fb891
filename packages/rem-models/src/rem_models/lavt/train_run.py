"""``rem train lavt --refs ...`` as a function: referring data in, a rem checkpoint out.

The run folder holds ``run.json`` (model and training configs, data, initialisation, losses per
epoch: the manifest), ``checkpoints/snapshot_<step>.pt`` after every epoch (the newest is kept;
``resume=True`` continues from it, exactly) and ``model_final.safetensors`` (the config rides
along, so ``rem predict`` rebuilds the model from it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import TextColumn, TimeRemainingColumn

from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError
from rem_core.progress import progress_bar
from rem_core.refer import read_referring
from rem_models.lavt.data import ReferringDataset
from rem_models.lavt.model import LAVT
from rem_models.lavt.text import build_tokenizer
from rem_models.lavt.training import LavtTrainConfig, TrainState, train_lavt


def _configs(arch: str, overrides: Sequence[str], saved: dict | None):
    from rem_models.engine.run_train import split_overrides
    from rem_models.overrides import override_config
    from rem_models.registry import get_model_entry

    entry = get_model_entry(arch)
    model_over, train_over = split_overrides(overrides)
    if saved is not None:
        model_config = type(entry.config).model_validate(saved["model_config"])
        train_config = LavtTrainConfig.model_validate(saved["train_config"])
    else:
        model_config = entry.config.model_copy(deep=True)
        train_config = LavtTrainConfig(image_size=model_config.image_size)
    model_config = override_config(model_config, model_over)
    train_config = override_config(train_config, train_over)
    if train_config.image_size != model_config.image_size:
        raise RemError(
            f"image_size {train_config.image_size} differs from model.image_size "
            f"{model_config.image_size}; set both",
            where="--set",
        )
    return model_config, train_config


def train_referring_run(
    arch: str,
    refs: str | Path,
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = "train",
    instances: str | Path | None = None,
    overrides: Sequence[str] = (),
    init_swin: str | Path | None = None,
    init_bert: str | None = None,
    device: str = "cpu",
    resume: bool = False,
    console: Console | None = None,
) -> Path:
    """Train ``arch`` with LAVT's recipe; returns the path of ``model_final.safetensors``.

    ``overrides``: ``model.KEY=VALUE`` for the model, bare keys for :class:`LavtTrainConfig`
    (``lr``, ``epochs``, ``batch_size``, ``bert_layers``...). ``init_swin`` is a classification
    Swin ``.pth`` (LAVT: swin_base_patch4_window12_384_22k.pth), ``init_bert`` a Hugging Face
    BERT name or folder (LAVT: bert-base-uncased); without them the weights start random.
    """
    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.engine.training_state import (
        load_snapshot,
        open_run_folder,
        prune_snapshots,
        save_snapshot,
        snapshot_path,
    )
    from rem_models.lavt.init import load_bert_init, load_swin_init
    from rem_models.registry import get_model

    console = console or Console(stderr=True, soft_wrap=True)
    out = Path(out_dir)
    manifest_path = out / "run.json"
    saved, snapshot = open_run_folder(out, arch, resume)
    model_config, train_config = _configs(arch, overrides, saved)
    samples = read_referring(refs, split=split, instances=instances)
    if not samples:
        raise RemError(f"no referring samples{f' in split {split}' if split else ''}", path=refs)
    torch.manual_seed(train_config.seed)
    model: LAVT = get_model(arch, model_config)  # type: ignore[assignment]
    init: dict[str, Any] = {}
    state = None
    if snapshot is not None:
        snap = load_snapshot(snapshot)
        model.load_state_dict(snap["model"], strict=True)
        state = TrainState(
            snap["epoch"], list(snap["losses"]), snap["optimizer"], snap["schedule"], snap["rng"]
        )
        init = saved["init"] if saved else {}
    else:
        if init_swin is not None:
            report = load_swin_init(model, init_swin)
            init["swin"] = {"source": str(init_swin), "loaded": len(report.loaded)}
        if init_bert is not None:
            report = load_bert_init(model, init_bert)
            init["bert"] = {"source": str(init_bert), "loaded": len(report.loaded)}
    tokenizer = build_tokenizer(model_config.text)
    dataset = ReferringDataset(
        samples, image_dir, tokenizer, image_size=train_config.image_size, seed=train_config.seed
    )
    manifest: dict[str, Any] = {
        "arch": arch,
        "model_config": model_config.model_dump(mode="json"),
        "train_config": train_config.model_dump(mode="json"),
        "data": {
            "refs": str(refs),
            "split": split,
            "image_dir": str(image_dir),
            "refs_count": len(samples),
        },
        "init": init,
        "epochs_done": state.epoch if state else 0,
        "epoch_mean_loss": (saved or {}).get("epoch_mean_loss", []),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    per_epoch = max(1, len(dataset) // train_config.batch_size)
    started = time.perf_counter()

    def on_epoch(progress_state: TrainState) -> None:
        step = len(progress_state.losses)
        epoch_losses = progress_state.losses[-per_epoch:]
        manifest["epochs_done"] = progress_state.epoch
        manifest["epoch_mean_loss"].append(sum(epoch_losses) / len(epoch_losses))
        save_snapshot(
            snapshot_path(out, step),
            {
                "model": model.state_dict(),
                "step": step,
                "epoch": progress_state.epoch,
                "losses": progress_state.losses,
                "optimizer": progress_state.optimizer,
                "schedule": progress_state.schedule,
                "rng": progress_state.torch_rng,
            },
        )
        prune_snapshots(out, keep=1)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2))

    progress = progress_bar(
        console,
        "[bold]train",
        tail=(TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()),
    )
    with progress:
        task = progress.add_task(
            "train",
            total=per_epoch * train_config.epochs,
            completed=len(state.losses) if state else 0,
            loss=float("nan"),
        )
        train_lavt(
            model,
            dataset,
            train_config,
            device=device,
            on_step=lambda step, loss, lr: progress.update(task, completed=step, loss=loss),
            on_epoch=on_epoch,
            resume=state,
        )
    manifest["seconds_this_session"] = round(time.perf_counter() - started, 1)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    final = save_checkpoint_safetensors(
        out / "model_final.safetensors", model.state_dict(), model_config, arch=arch
    )
    console.print(f"wrote {final} after {manifest['epochs_done']} epochs")
    return final
