"""The SeqTR training loop: Adam (amsgrad), clipping, warmup + step decay, EMA, LSJ, DDP, resume.

One training item per object with a random expression per epoch, as SeqTR. Every random draw
of the data is a function of (seed, epoch, item): the epoch's order comes from (seed, epoch)
and an item's expression and jitter from (seed, epoch, index). So several processes, or one
process accumulating micro-batches, see the same global batch at each step, and a resumed run
needs only the step to continue the data. The model's own draws (dropout, contour shuffles)
use the global torch RNG, whose state every snapshot carries.

A step's global batch is cut into ``world_size x grad_accum`` micro-batches (sizes differ by
at most one); process r takes pieces r*A .. r*A+A-1. Each micro-batch loss (a mean over its
items) is weighted by its share of the global batch, so the summed gradient is that of the
global mean whatever the split. BatchNorm layers (trainable or frozen, in train mode as in
SeqTR) normalise with micro-batch statistics, so W processes equal one process with
``grad_accum = W x A``; their running statistics follow process 0 (DDP broadcasts them).

Images are decoded once per process and kept in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rem_core.errors import RemError
from rem_models.engine.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    current,
    mean_over_processes,
)
from rem_models.engine.trainer import seed_everything
from rem_models.engine.training_state import rng_state, set_rng_state
from rem_models.seqtr.data import GroundingItem
from rem_models.seqtr.ema import ModelEMA
from rem_models.seqtr.language import encode
from rem_models.seqtr.model import SeqTR, mask_to_targets
from rem_models.seqtr.train_config import SeqTRTrainConfig, lr_factor
from rem_models.seqtr.transforms import collate, load_image, lsj_transform, test_transform

StepHook = Callable[[int, int, float, float], None]  # (step, epoch, loss, lr) after a step
SnapshotHook = Callable[[dict[str, Any]], None]  # on the main process


class ImageCache:
    """(H, W, 3) uint8 images of a folder, decoded on first use."""

    def __init__(self, image_dir: Path) -> None:
        self.image_dir = image_dir
        self.images: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.images:
            self.images[name] = load_image(self.image_dir / name)
        return self.images[name]


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The item order of ``epoch`` (a permutation drawn from seed and epoch)."""
    return np.random.default_rng([seed, epoch, 0]).permutation(num_items)


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` in ``epoch``: its expression, then its jitter."""
    return np.random.default_rng([seed, epoch, 1, index])


def micro_batches(batch: np.ndarray, world_size: int, rank: int, accum: int) -> list[np.ndarray]:
    """This process's pieces of a global batch (see the module docstring); may be empty."""
    pieces = np.array_split(batch, world_size * accum)
    return [p for p in pieces[rank * accum : (rank + 1) * accum] if len(p)]


def _draw(
    items: Sequence[GroundingItem], piece: np.ndarray, seed: int, epoch: int
) -> tuple[list[GroundingItem], list[str], list[np.random.Generator]]:
    """The items of ``piece``, each one's expression for this epoch, and its jitter generator."""
    rngs = [item_rng(seed, epoch, int(i)) for i in piece]
    chosen = [items[int(i)] for i in piece]
    sentences = [
        it.expressions[r.integers(len(it.expressions))] for it, r in zip(chosen, rngs, strict=True)
    ]
    return chosen, sentences, rngs


def make_batch(
    model: SeqTR,
    items: Sequence[GroundingItem],
    sentences: Sequence[str],
    rngs: Sequence[np.random.Generator] | None,
    images: Callable[[str], np.ndarray],
    vocab: dict[str, int],
    max_tokens: int,
    config: SeqTRTrainConfig,
) -> tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor, dict[str, torch.Tensor]]:
    """Transformed images, token ids and targets of the model's task, in network pixels.

    With ``rngs`` (one per item) and ``config.lsj`` the images are jittered; otherwise they
    get the test-time resize.
    """
    arrays, boxes, masks = [], [], []
    for k, item in enumerate(items):
        image = images(item.file_name)
        x, y, w, h = item.bbox
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
        mask = item.decode_mask() if model.task == "mask" else None
        if rngs is not None and config.lsj:
            image, box, mask = lsj_transform(
                image, box, rngs[k], model.input_size, mask, config.scale_range
            )
        else:
            image, mask, scale = test_transform(image, model.input_size, mask)
            box = box * scale
        arrays.append(image)
        boxes.append(box)
        masks.append(mask)
    batch, sizes = collate(arrays)
    ids = torch.tensor([encode(s, vocab, max_tokens) for s in sentences])
    if model.task == "box":
        targets = {"boxes": torch.from_numpy(np.stack(boxes)).float()}
    else:
        targets = mask_to_targets(masks, model.num_ray)
    return batch, sizes, ids, targets


def _restore(
    state: dict[str, Any],
    model: SeqTR,
    ema: ModelEMA | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    dist: DistInfo,
) -> None:
    """Put a snapshot back: weights, EMA (parameters and buffers), optimiser, schedule, RNGs."""
    model.load_state_dict(state["model"])
    if ema is not None:
        ema.ema.load_state_dict(state["ema"])
        ema.updates = int(state["ema_updates"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rngs = state["rng"]
    if state["world_size"] != dist.world_size:
        raise RemError(
            f"the snapshot was taken with {state['world_size']} processes, not "
            f"{dist.world_size}: resume with as many"
        )
    set_rng_state(rngs[dist.rank])


def train_seqtr(
    model: SeqTR,
    items: Sequence[GroundingItem],
    image_dir: str | Path,
    vocab: dict[str, int],
    config: SeqTRTrainConfig,
    *,
    max_tokens: int,
    device: str | torch.device = "cpu",
    resume: dict[str, Any] | None = None,
    on_step: StepHook | None = None,
    on_snapshot: SnapshotHook | None = None,
    dist_info: DistInfo | None = None,
) -> tuple[SeqTR, list[float]]:
    """Train ``model`` in place; returns (the EMA model if enabled else the model, step losses).

    ``resume`` is a snapshot as passed to ``on_snapshot`` (after every epoch and every
    ``checkpoint_every`` steps): the run continues exactly where it stopped. The model must be
    built identically on every process.
    """
    dist = dist_info or current()
    device = torch.device(device)
    seed_everything(config.seed + dist.rank)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=config.lr, betas=config.betas, eps=config.eps, amsgrad=config.amsgrad
    )
    per_epoch = max(1, -(-len(items) // config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, per_epoch, config)
    )
    ema = ModelEMA(model, config.ema_decay) if config.ema else None
    losses: list[float] = []
    if resume is not None:
        _restore(resume, model, ema, optimizer, scheduler, dist)
        losses = list(resume["losses"])
    net: nn.Module = model
    if dist.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    images = ImageCache(Path(image_dir))
    accum = config.grad_accum
    order, order_epoch = np.empty(0, dtype=np.int64), -1
    for step in range(len(losses), per_epoch * config.epochs):
        epoch, k = divmod(step, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(items), config.seed, epoch), epoch
        batch = order[k * config.batch_size : (k + 1) * config.batch_size]
        pieces = micro_batches(batch, dist.world_size, dist.rank, accum)
        # A process without a share still runs one item, weighted 0, so DDP's all-reduce meets.
        weights = [len(p) / len(batch) * dist.world_size for p in pieces] or [0.0]
        pieces = pieces or [batch[:1]]
        lr = optimizer.param_groups[0]["lr"]
        optimizer.zero_grad(set_to_none=True)
        local = 0.0
        for m, (piece, weight) in enumerate(zip(pieces, weights, strict=True)):
            images_b, sizes, ids, targets = make_batch(
                model, *_draw(items, piece, config.seed, epoch), images, vocab, max_tokens, config
            )
            targets = {name: t.to(device) for name, t in targets.items()}
            last = m == len(pieces) - 1
            sync = net.no_sync() if dist.distributed and not last else contextlib.nullcontext()
            with sync:
                loss = net(images_b.to(device), sizes, ids.to(device), targets)["loss"]
                (loss * weight).backward()
            local += float(loss.detach()) * weight / dist.world_size
        if config.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.clip)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        losses.append(mean_over_processes({"loss": local}, device)["loss"] * dist.world_size)
        done = step + 1
        if on_step is not None:
            on_step(done, epoch, losses[-1], lr)
        every = config.checkpoint_every
        if done % per_epoch == 0 or (every and done % every == 0):
            rngs = all_gather_objects(rng_state())  # every process's stream, in rank order
            if dist.is_main and on_snapshot is not None:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": done,
                    "epoch": epoch + (k + 1) / per_epoch,
                    "losses": list(losses),
                    "rng": rngs,
                    "world_size": dist.world_size,
                }
                if ema is not None:
                    state |= {"ema": ema.ema.state_dict(), "ema_updates": ema.updates}
                on_snapshot(state)
            barrier()
    final = ema.ema if ema is not None else model
    return final.eval(), losses
