"""A small CIM training loop: one image per iteration, SGD, random scale and flip; resumable
with snapshots, metrics and progress when given a :class:`~rem_models.cim.train_state.CimRun`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from rem_models.cim.data import CimSample
from rem_models.cim.inference import resize_long_side
from rem_models.cim.losses import LossWeights, cim_losses
from rem_models.cim.model import CimModel
from rem_models.cim.train_state import (
    CimRun,
    restore_cim_snapshot,
    save_cim_snapshot,
    start_fresh,
)
from rem_models.engine.metrics_log import MetricsLog, TrainProgress


@dataclass(frozen=True)
class CimTrainSettings:
    """Published recipe by default: SGD lr 5e-4, momentum 0.9, weight decay 5e-4, lr x0.1 at
    ``step``; scales 480-1200 (long side) and flips. ``scales=()`` keeps each image's size."""

    iterations: int = 90_000
    step: int = 60_000
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scales: Sequence[int] = (480, 576, 688, 864, 1200)  # CIM configs TRAIN.SCALES
    flip: bool = True
    seed: int = 0


def _augment(sample: CimSample, scale: int | None, flip: bool) -> tuple[np.ndarray, ...]:
    """Image (H', W', 3), boxes and crops for one training view of ``sample``."""
    img, f = (sample.image, 1.0) if scale is None else resize_long_side(sample.image, scale)
    boxes = sample.boxes * f
    crops = sample.crops
    if flip:
        width = img.shape[1]
        img = img[:, ::-1]
        boxes = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width, 0, width, 0]
        crops = crops[:, :, ::-1]
    return np.ascontiguousarray(img), boxes.astype(np.float32), np.ascontiguousarray(crops)


def lr_at(iteration: int, settings: CimTrainSettings) -> float:
    """The lr of 0-based ``iteration``: x0.1 from ``settings.step`` on (MultiStepLR's values)."""
    return settings.lr * 0.1 if iteration >= settings.step else settings.lr


def train_cim(
    model: CimModel,
    samples: Sequence[CimSample],
    settings: CimTrainSettings,
    weights: LossWeights | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    run: CimRun | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``samples`` (only those with proposals and a label); returns
    the losses of each iteration this call ran. Deterministic for a seed on CPU. With ``run``:
    snapshots, ``metrics.jsonl`` and progress in ``run.folder``; ``run.resume`` continues from
    the newest snapshot, bit-identical to an uninterrupted run."""
    usable = [s for s in samples if len(s.masks) and s.labels.any()]
    if not usable:
        raise ValueError("no training image has both proposals and an image-level label")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    start = 0
    if run is not None and run.resume:
        start = restore_cim_snapshot(run, model, optimizer, rng, settings)
    elif run is not None:
        start_fresh(run)
    model.train()
    history: list[dict[str, float]] = []
    with _RunLog(run, start, settings.iterations) if run else nullcontext() as log:
        for it in range(start, settings.iterations):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(it, settings)
            record = _train_step(model, usable, settings, rng, optimizer, weights)
            history.append(record)
            if log is not None:
                done = it + 1
                log.step(done, lr_at(it, settings), record)
                if done % log.run.checkpoint_every == 0 or done == settings.iterations:
                    save_cim_snapshot(log.run, done, model, optimizer, rng, settings)
            if on_step is not None:
                on_step(it, record)
    model.eval()
    return history


def _train_step(
    model: CimModel,
    usable: Sequence[CimSample],
    settings: CimTrainSettings,
    rng: np.random.Generator,
    optimizer: torch.optim.Optimizer,
    weights: LossWeights | None,
) -> dict[str, float]:
    """One SGD step on a random view of a random image; returns its losses."""
    device = next(model.parameters()).device
    sample = usable[int(rng.integers(len(usable)))]
    scale = int(rng.choice(settings.scales)) if settings.scales else None
    flip = bool(settings.flip and rng.random() < 0.5)
    img, boxes, crops = _augment(sample, scale, flip)
    out = model(
        torch.as_tensor(img, device=device).permute(2, 0, 1).float(),
        torch.as_tensor(boxes, device=device),
        torch.as_tensor(crops, device=device),
    )
    # Pseudo-labels depend on the proposals' masks only, which no view changes.
    losses = cim_losses(out, sample, rng, weights)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()} | {"total": float(total.detach())}


class _RunLog:
    """``metrics.jsonl`` records (losses averaged since the last record) and the progress bar."""

    def __init__(self, run: CimRun, start: int, total: int) -> None:
        self.run, self.total = run, total
        self.metrics = MetricsLog(run.folder / "metrics.jsonl", start_step=start)
        console = run.console
        self.progress = TrainProgress(console, total, start, True) if console else None
        self.window: list[dict[str, float]] = []
        self.clock = time.perf_counter()

    def step(self, done: int, lr: float, record: dict[str, float]) -> None:
        self.window.append(record)
        if done % self.run.log_every and done != self.total:
            if self.progress is not None:
                self.progress.advance(done)
            return
        now = time.perf_counter()
        # Images without peaks have no PCL term: average each loss over the whole window.
        keys = dict.fromkeys(k for r in self.window for k in r)
        mean = {k: sum(r.get(k, 0.0) for r in self.window) / len(self.window) for k in keys}
        seconds = round((now - self.clock) / len(self.window), 4)
        rounded = {k: round(v, 6) for k, v in mean.items()}
        self.metrics.write({"step": done, "lr": lr, **rounded, "seconds_per_step": seconds})
        if self.progress is not None:
            self.progress.advance(done, f"loss {mean['total']:.4f} lr {lr:.3g}")
        self.window, self.clock = [], now

    def __enter__(self) -> _RunLog:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
