"""``rem train seqtr_* --refs ...`` as a function: referring data in, a rem checkpoint out.

The run folder holds ``run.json`` (architecture, model and train configs, the word list, data,
initialisation, progress: the manifest), ``metrics.jsonl`` (loss and lr of every step),
``checkpoints/snapshot_<step>.pt`` after every epoch and every ``checkpoint_every`` steps
(model, EMA, optimiser, schedule, step and every process's RNG states; ``resume=True``
continues from the newest exactly) and ``model_final.safetensors`` (the EMA weights when the
EMA is on, with the config and the word list: what ``rem seqtr predict`` and ``rem predict
MODEL --refs`` read). Under torchrun every process trains its share of each global batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from rem_core.atomic import atomic_write_text
from rem_core.errors import RemError
from rem_models.seqtr.config import SeqTRConfig
from rem_models.seqtr.model import SeqTR
from rem_models.seqtr.train_config import SeqTRTrainConfig, recipe

FINAL_WEIGHTS = "model_final.safetensors"
# Changing these between the interrupted and the resumed part breaks the exact continuation.
_RESUME_SENSITIVE = ("batch_size", "grad_accum", "lr", "betas", "eps", "amsgrad", "clip")
_RESUME_SENSITIVE += ("warmup_epochs", "decay_epochs", "decay_factor", "ema", "ema_decay")
_RESUME_SENSITIVE += ("lsj", "scale_range", "seed")


def resolve_configs(
    arch: str, overrides: Sequence[str], vocab_size: int, saved: dict[str, Any] | None
) -> tuple[SeqTRConfig, SeqTRTrainConfig]:
    """Model and train configs: the variant's (or ``saved``), the task's recipe, then ``--set``.

    ``model.KEY=VALUE`` items change the model, bare keys :class:`SeqTRTrainConfig`. The word
    table always follows the vocabulary of the training expressions.
    """
    from rem_models.engine.run_train import split_overrides
    from rem_models.overrides import override_config
    from rem_models.registry import get_model_entry

    entry = get_model_entry(arch)
    if not isinstance(entry.config, SeqTRConfig):
        raise RemError(f"{arch!r} is not a SeqTR model")
    model_over, train_over = split_overrides(overrides)
    if saved is not None:
        model_cfg = SeqTRConfig.model_validate(saved["model_config"])
        train_cfg = SeqTRTrainConfig.model_validate(saved["train_config"])
    else:
        model_cfg = entry.config.model_copy(deep=True)
    model_cfg = override_config(model_cfg, model_over)
    if saved is None:
        train_cfg = recipe(model_cfg.task)
    train_cfg = override_config(train_cfg, train_over)
    model_cfg = override_config(model_cfg, {"language.vocab_size": vocab_size})
    return model_cfg, train_cfg  # type: ignore[return-value]


def init_from_checkpoint(model: SeqTR, checkpoint: Path) -> tuple[int, int]:
    """Load the matching tensors of a rem checkpoint; drop word tables and mismatched shapes.

    Partial-RES starts RES training from the REC model this way (the position table of a box
    model does not fit a contour model, and the word table follows the new vocabulary).
    Returns (tensors loaded, tensors of the model).
    """
    from rem_models.checkpoints import load_checkpoint_safetensors

    state = load_checkpoint_safetensors(checkpoint).state_dict
    own = model.state_dict()
    kept = {
        k: v
        for k, v in state.items()
        if k in own and k != "lan_enc.embedding.weight" and v.shape == own[k].shape
    }
    model.load_state_dict(kept, strict=False)
    return len(kept), len(own)


def _initialise(
    model: SeqTR,
    words: list[str],
    init: Path | None,
    vectors: Path | None,
    darknet: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Pretrained parts of a fresh run; returns what was loaded (for the manifest)."""
    done: dict[str, Any] = {}
    if vectors is not None:
        from rem_models.seqtr.language import load_word_vectors

        dim = model.lan_enc.embedding.embedding_dim
        model.lan_enc.load_vectors(load_word_vectors(vectors, words, dim))
        done["vectors"] = str(vectors)
    if darknet is not None:
        from rem_models.seqtr.darknet import load_darknet_weights

        count = load_darknet_weights(model.vis_enc, darknet)
        say(f"loaded {count} DarkNet convs from {darknet}")
        done["darknet"] = {"source": str(darknet), "convs": count}
    if init is not None:
        loaded, total = init_from_checkpoint(model, Path(init))
        say(f"initialised {loaded}/{total} tensors from {Path(init).name}")
        done["init"] = {"source": str(init), "loaded": loaded}
    return done


def _changed(saved: dict[str, Any], config: SeqTRTrainConfig, num_items: int) -> str:
    """What differs from the interrupted part in a way that breaks the exact continuation."""
    now = config.model_dump(mode="json")
    changed = [k for k in _RESUME_SENSITIVE if saved["train_config"][k] != now[k]]
    if saved["data"]["items"] != num_items:
        changed.append("data")
    return ", ".join(changed)


def train_referring_run(
    arch: str,
    refs: str | Path,
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = "train",
    instances: str | Path | None = None,
    overrides: Sequence[str] = (),
    init: str | Path | None = None,
    vectors: str | Path | None = None,
    darknet: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    final: str | Path | None = None,
    console: Console | None = None,
) -> Path:
    """Train ``arch`` with SeqTR's recipe; returns the path of the final weights.

    ``refs``: refer ``refs(*).p`` (``instances``: its COCO file), rem referring JSON or
    SeqTR's ``instances.json`` (told by content). ``init``: a rem checkpoint loaded
    non-strictly (Partial-RES: RES from REC); ``vectors``: GloVe-format word vectors;
    ``darknet``: Darknet ``.weights`` for the backbone; ``final``: where the final weights
    go (default ``out_dir/model_final.safetensors``).
    """
    from rem_models.checkpoints import save_checkpoint_safetensors
    from rem_models.engine import training_state as snaps
    from rem_models.engine.distributed import barrier, init_distributed
    from rem_models.engine.metrics_log import MetricsLog, TrainProgress
    from rem_models.registry import get_model
    from rem_models.seqtr.language import build_vocabulary
    from rem_models.seqtr.pipeline import VOCAB_KEY, load_items
    from rem_models.seqtr.training import train_seqtr

    console = console or Console(stderr=True, soft_wrap=True)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info, dev = init_distributed(device)
    say = console.print if info.is_main else (lambda _: None)
    out = Path(out_dir)
    manifest_path = out / "run.json"
    saved, newest = snaps.open_run_folder(out, arch, resume)
    items = load_items(refs, split, instances)
    if not items:
        raise RemError(f"no referring items{f' in split {split!r}' if split else ''}", path=refs)
    words = (
        saved["vocabulary"] if saved else build_vocabulary(e for i in items for e in i.expressions)
    )
    model_cfg, train_cfg = resolve_configs(arch, overrides, len(words), saved)
    if model_cfg.task == "mask":
        no_mask = [it.ref_id for it in items if it.mask is None]
        if no_mask:
            raise RemError(f"mask training needs masks; ref {no_mask[0]} has none", path=refs)
    snapshot = snaps.load_snapshot(newest) if newest is not None else None
    if saved is not None:
        changed = _changed(saved, train_cfg, len(items))
        if changed:
            say(f"[yellow]warning:[/] resuming with changed {changed}; the run will differ")
    torch.manual_seed(train_cfg.seed)  # identical initial weights in every process
    model: SeqTR = get_model(arch, model_cfg)  # type: ignore[assignment]
    manifest: dict[str, Any] = saved or {
        "arch": arch,
        "data": {
            "refs": str(refs),
            "split": split,
            "image_dir": str(image_dir),
            "items": len(items),
        },
        "init": _initialise(model, words, init, vectors, darknet, say),
        "vocabulary": words,
    }
    manifest.update(
        model_config=model_cfg.model_dump(mode="json"),
        train_config=train_cfg.model_dump(mode="json"),
        world_size=info.world_size,
    )
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    per_epoch = max(1, -(-len(items) // train_cfg.batch_size))
    start = snapshot["step"] if snapshot else 0
    log = MetricsLog(out / "metrics.jsonl", start_step=start, enabled=info.is_main)

    def on_snapshot(state: dict[str, Any]) -> None:
        snaps.save_snapshot(snaps.snapshot_path(out, state["step"]), {**state, "arch": arch})
        snaps.prune_snapshots(out, train_cfg.keep_checkpoints)
        manifest.update(steps_done=state["step"], epochs_done=state["epoch"])
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")

    total = per_epoch * train_cfg.epochs
    say(f"{arch}: {len(items)} items, {total} steps of {train_cfg.batch_size}")
    say(f"{info.world_size} process(es) on {dev}")
    with TrainProgress(console, total, start, info.is_main) as progress:

        def step_done(step: int, epoch: int, loss: float, lr: float) -> None:
            log.write({"step": step, "epoch": epoch, "loss": loss, "lr": lr})
            status = f"epoch {epoch + 1} loss {loss:.4f}" if step % per_epoch == 0 else None
            progress.advance(step, status)

        trained, losses = train_seqtr(
            model,
            items,
            image_dir,
            {w: i for i, w in enumerate(words)},
            train_cfg,
            max_tokens=model_cfg.language.max_tokens,
            device=dev,
            resume=snapshot,
            on_step=step_done,
            on_snapshot=on_snapshot,
            dist_info=info,
        )
    path = Path(final) if final is not None else out / FINAL_WEIGHTS
    if info.is_main:
        save_checkpoint_safetensors(
            path,
            trained.state_dict(),
            model_cfg,
            arch=arch,
            metadata={
                VOCAB_KEY: json.dumps(words),
                "rem.source": Path(refs).name,
                "rem.step": str(len(losses)),
            },
        )
        say(f"wrote {path} after {len(losses)} steps; last loss {losses[-1]:.4f}")
    barrier()
    if owns_group and info.distributed:
        torch.distributed.destroy_process_group()
    return path
