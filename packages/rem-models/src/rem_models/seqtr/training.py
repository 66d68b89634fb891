"""Training SeqTR: Adam (amsgrad), gradient clipping, warmup + step decay, EMA, LSJ.

One training item per object with a random expression per epoch, as SeqTR. Images are read
once and kept in memory (SeqTR-scale runs should give a dataset of image paths instead; the
tiny test sets fit easily).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rem_models.seqtr.data import GroundingItem
from rem_models.seqtr.ema import ModelEMA
from rem_models.seqtr.language import encode
from rem_models.seqtr.model import SeqTR, mask_to_targets
from rem_models.seqtr.transforms import collate, load_image, lsj_transform, test_transform


@dataclass
class TrainSettings:
    """SeqTR's recipe by default (REC: 60 epochs, decay at 50; RES: 90, decay at 75)."""

    epochs: int = 60
    batch_size: int = 128
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    amsgrad: bool = True
    clip: float = 0.15
    warmup_epochs: float = 5.0
    decay_epochs: Sequence[int] = (50,)
    decay_factor: float = 0.1
    ema: bool = True
    lsj: bool = True
    scale_range: tuple[float, float] = (0.3, 1.4)
    seed: int = 0
    device: str = "cpu"
    extra: dict = field(default_factory=dict)


def lr_factor(step: int, steps_per_epoch: int, settings: TrainSettings) -> float:
    """Linear warmup over ``warmup_epochs`` then x decay_factor at each decay epoch."""
    warm = settings.warmup_epochs * steps_per_epoch
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    epoch = step / steps_per_epoch
    return factor * settings.decay_factor ** sum(epoch >= e for e in settings.decay_epochs)


class _ImageCache:
    def __init__(self, image_dir: Path) -> None:
        self.image_dir = image_dir
        self.images: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.images:
            self.images[name] = load_image(self.image_dir / name)
        return self.images[name]


def make_batch(
    model: SeqTR,
    items: Sequence[GroundingItem],
    sentences: Sequence[str],
    images: Callable[[str], np.ndarray],
    vocab: dict[str, int],
    max_tokens: int,
    rng: np.random.Generator | None,
    settings: TrainSettings,
) -> tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor, dict[str, torch.Tensor]]:
    """Transformed images, token ids and targets of the model's task, in network pixels."""
    arrays, boxes, masks = [], [], []
    for item in items:
        image = images(item.file_name)
        x, y, w, h = item.bbox
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
        mask = item.decode_mask() if model.task == "mask" else None
        if rng is not None and settings.lsj:
            image, box, mask = lsj_transform(
                image, box, rng, model.input_size, mask, settings.scale_range
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


def train_seqtr(
    model: SeqTR,
    items: Sequence[GroundingItem],
    image_dir: str | Path,
    vocab: dict[str, int],
    settings: TrainSettings,
    *,
    max_tokens: int,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[SeqTR, list[float]]:
    """Train ``model`` in place; returns (the EMA model if enabled else the model, losses)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model.generator = torch.Generator().manual_seed(settings.seed)
    device = torch.device(settings.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=settings.lr, betas=settings.betas, eps=settings.eps, amsgrad=settings.amsgrad
    )
    steps_per_epoch = max(1, -(-len(items) // settings.batch_size))
    total = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps_per_epoch, settings)
    )
    ema = ModelEMA(model) if settings.ema else None
    images = _ImageCache(Path(image_dir))
    losses: list[float] = []
    step = 0
    for _ in range(settings.epochs):
        order = rng.permutation(len(items))
        for start in range(0, len(items), settings.batch_size):
            chosen = [items[i] for i in order[start : start + settings.batch_size]]
            sentences = [it.expressions[rng.integers(len(it.expressions))] for it in chosen]
            batch, sizes, ids, targets = make_batch(
                model, chosen, sentences, images, vocab, max_tokens, rng, settings
            )
            targets = {k: v.to(device) for k, v in targets.items()}
            loss = model(batch.to(device), sizes, ids.to(device), targets)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            losses.append(float(loss.detach()))
            step += 1
            if progress is not None:
                progress(step, total, losses[-1])
    final = ema.ema if ema is not None else model
    return final.eval(), losses
