"""The training loop: accumulation, mixed precision, clipping, snapshots, resume, evaluation.

One optimiser step consumes one global batch (see :mod:`rem_models.engine.sampler`): each
process runs ``grad_accum`` forward/backward passes on its micro-batches, gradients are summed
(and, across processes, averaged by DDP), then clipped and applied. Losses are divided by
``grad_accum`` so the gradient is that of the mean over the global batch whatever the split.
The model follows the family contract: in train mode ``model(images, targets)`` returns a dict
of scalar losses, whose sum is minimised.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from rem_core.errors import RemError
from rem_models.engine import training_state as snapshots
from rem_models.engine.config import TrainConfig
from rem_models.engine.dataset import collate
from rem_models.engine.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    current,
    mean_over_processes,
)
from rem_models.engine.inference import autocast, unwrap
from rem_models.engine.metrics_log import MetricsLog, TrainProgress
from rem_models.engine.param_groups import build_optimizer
from rem_models.engine.sampler import TrainBatchSampler
from rem_models.engine.schedule import build_scheduler

# Snapshot fields besides the model: changing these between runs breaks an exact resume.
_RESUME_SENSITIVE = ("batch_size", "grad_accum", "optimizer", "lr", "schedule", "augment")

EvalFn = Callable[[nn.Module, torch.device, DistInfo], dict[str, Any] | None]


@dataclass
class TrainResult:
    """What a run did: the last step, its wall time, the final logged losses and evaluation."""

    out_dir: Path
    start_step: int
    steps: int
    seconds: float
    losses: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def use_deterministic_kernels() -> None:
    """Ask torch for deterministic CUDA kernels (warn where none exists) and no autotuning."""
    # cuBLAS needs a fixed workspace for reproducible matmuls; read when CUDA initialises.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


class Trainer:
    """Trains ``model`` on ``dataset`` (items ``(image, target)``) following ``cfg``.

    ``out_dir`` receives ``metrics.jsonl`` and ``checkpoints/snapshot_*.pt``. ``meta`` is stored
    in every snapshot (architecture name, model config, categories) so a snapshot is
    self-describing. ``evaluator(model, device, dist_info)`` returns metrics on the main process.
    ``export(model, step)`` runs on the main process after the last step (e.g. to write the
    final safetensors). The model must already be built identically on every process.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: torch.utils.data.Dataset,
        cfg: TrainConfig,
        out_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        evaluator: EvalFn | None = None,
        export: Callable[[nn.Module, int], None] | None = None,
        meta: dict[str, Any] | None = None,
        console: Console | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.seed = seed
        self.evaluator = evaluator
        self.export = export
        self.meta = dict(meta or {})
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.dist = dist_info or current()
        self.micro_batch = cfg.per_process_batch(self.dist.world_size)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and cfg.amp_dtype == "float16"
        )

    # ----------------------------------------------------------------------------------------
    # state

    def _snapshot(self, step: int, optimizer: Any, scheduler: Any) -> None:
        rngs = all_gather_objects(snapshots.rng_state())  # every process's stream, in rank order
        if self.dist.is_main:
            state = {
                "model": unwrap(self.model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": step,
                "world_size": self.dist.world_size,
                "rng": rngs,
                "train_config": self.cfg.model_dump_json(),
                "meta": json.dumps(self.meta),
            }
            snapshots.save_snapshot(snapshots.snapshot_path(self.out_dir, step), state)
            snapshots.prune_snapshots(self.out_dir, self.cfg.keep_checkpoints)
        barrier()

    def _resume(self, optimizer: Any, scheduler: Any) -> int:
        found = snapshots.list_snapshots(self.out_dir)
        if not found:
            if self.dist.is_main:
                self.console.print(f"no snapshot in {self.out_dir / 'checkpoints'}; starting at 0")
            return 0
        step, path = found[-1]
        state = snapshots.load_snapshot(path)
        unwrap(self.model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        saved = json.loads(state["train_config"])
        changed = [
            k for k in _RESUME_SENSITIVE if saved.get(k) != self.cfg.model_dump(mode="json")[k]
        ]
        if changed and self.dist.is_main:
            self.console.print(
                f"[yellow]warning:[/] resuming with changed {', '.join(changed)}; "
                "the run will not match an uninterrupted one"
            )
        rngs = state.get("rng") or []
        if state.get("world_size") == self.dist.world_size and self.dist.rank < len(rngs):
            snapshots.set_rng_state(rngs[self.dist.rank])
        elif self.dist.is_main:
            self.console.print(
                "[yellow]warning:[/] snapshot taken with a different number of processes; "
                "random streams restart from the seed"
            )
        if self.dist.is_main:
            self.console.print(f"resumed from {path} (step {step})")
        return int(step)

    # ----------------------------------------------------------------------------------------
    # loop

    def _loader(self, start_step: int) -> torch.utils.data.DataLoader:
        sampler = TrainBatchSampler(
            len(self.dataset),
            self.cfg.batch_size,
            steps=self.cfg.steps,
            start_step=start_step,
            world_size=self.dist.world_size,
            rank=self.dist.rank,
            grad_accum=self.cfg.grad_accum,
            seed=self.seed,
        )
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            # The loader seeds its workers from this generator; left to the global one, starting
            # the loader would consume a draw and shift the model's random stream on resume.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _to_device(self, images: list, targets: list) -> tuple[list, list]:
        dev = self.device
        images = [im.to(dev, non_blocking=True) for im in images]
        targets = [
            {k: v.to(dev, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
            for t in targets
        ]
        return images, targets

    def _step(self, batches: Any, step: int, optimizer: Any) -> dict[str, float]:
        """One optimiser step over ``grad_accum`` micro-batches; returns the mean losses."""
        cfg = self.cfg
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m in range(cfg.grad_accum):
            images, targets = self._to_device(*next(batches))
            last = m == cfg.grad_accum - 1
            # DDP all-reduces on every backward; skip it until the last micro-batch.
            sync = (
                contextlib.nullcontext()
                if last or not isinstance(self.model, nn.parallel.DistributedDataParallel)
                else self.model.no_sync()
            )
            with sync:
                with autocast(self.device, self.use_amp, cfg.amp_dtype):
                    losses = self.model(images, targets)
                loss = sum(losses.values())
                if not torch.isfinite(loss):
                    shown = {k: float(v) for k, v in losses.items()}
                    raise RemError(
                        f"loss is not finite at step {step}: {shown}; lower the lr, add "
                        "warmup or set clip_grad_norm"
                    )
                self.scaler.scale(loss / cfg.grad_accum).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
        if cfg.clip_grad_norm is not None:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()
        totals["loss"] = sum(totals.values())
        return totals

    def _evaluate(self, step: int, log: MetricsLog, progress: TrainProgress) -> dict | None:
        if self.evaluator is None:
            return None
        start = time.perf_counter()
        metrics = self.evaluator(self.model, self.device, self.dist)
        if self.dist.is_main and metrics is not None:
            seconds = time.perf_counter() - start
            log.write({"step": step, "eval": metrics, "eval_seconds": round(seconds, 3)})
            shown = ", ".join(
                f"{t} AP {m['AP'] * 100:.1f}" for t, m in metrics.items() if m.get("AP") is not None
            )
            progress.note(f"step {step}: eval {shown} ({seconds:.1f} s)")
        return metrics

    def run(self, *, resume: bool = False) -> TrainResult:
        """Train to ``cfg.steps`` (from the newest snapshot in ``out_dir`` if ``resume``)."""
        cfg, dist = self.cfg, self.dist
        seed_everything(self.seed + dist.rank)
        if cfg.deterministic:
            use_deterministic_kernels()
        self.model.to(self.device)
        self.model.train()
        optimizer = build_optimizer(self.model, cfg)
        scheduler = build_scheduler(optimizer, cfg)
        start_step = self._resume(optimizer, scheduler) if resume else 0
        if dist.distributed and not isinstance(self.model, nn.parallel.DistributedDataParallel):
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters
            )
        log = MetricsLog(
            self.out_dir / "metrics.jsonl", start_step=start_step, enabled=dist.is_main
        )
        result = TrainResult(self.out_dir, start_step, start_step, 0.0)
        begin = time.perf_counter()
        if start_step >= cfg.steps:
            return result
        batches = iter(self._loader(start_step))
        window_start = time.perf_counter()
        with TrainProgress(self.console, cfg.steps, start_step, dist.is_main) as progress:
            for step in range(start_step, cfg.steps):
                lr = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1)
                losses = self._step(batches, step, optimizer)
                scheduler.step()
                done = step + 1
                if done % cfg.log_every == 0 or done == cfg.steps:
                    losses = mean_over_processes(losses, self.device)
                    now = time.perf_counter()
                    record = {
                        "step": done,
                        "lr": lr,
                        **{k: round(v, 6) for k, v in losses.items()},
                        "seconds_per_step": round((now - window_start) / cfg.log_every, 4),
                    }
                    if self.device.type == "cuda":
                        record["max_mem_mb"] = torch.cuda.max_memory_allocated() // 2**20
                    log.write(record)
                    window_start = now
                    progress.advance(done, f"loss {losses['loss']:.4f} lr {lr:.3g}")
                    result.losses = losses
                else:
                    progress.advance(done)
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    self._snapshot(done, optimizer, scheduler)
                if (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps:
                    result.evaluation = self._evaluate(done, log, progress) or result.evaluation
        result.steps = cfg.steps
        result.seconds = time.perf_counter() - begin
        if self.export is not None and dist.is_main:
            self.export(unwrap(self.model), cfg.steps)
        barrier()
        return result
