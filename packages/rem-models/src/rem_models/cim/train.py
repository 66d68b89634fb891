"""A small CIM training loop: one image per iteration, SGD, random scale and flip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rem_models.cim.data import CimSample
from rem_models.cim.inference import resize_short_side
from rem_models.cim.losses import LossWeights, cim_losses
from rem_models.cim.model import CimModel


@dataclass(frozen=True)
class CimTrainSettings:
    """Published recipe by default: SGD lr 5e-4, momentum 0.9, weight decay 5e-4, lr x0.1 at
    ``step``; scales 480-1200 (short side) and flips. ``scales=()`` keeps each image's size."""

    iterations: int = 90_000
    step: int = 60_000
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scales: Sequence[int] = (480, 576, 688, 864, 1000, 1200)
    flip: bool = True
    seed: int = 0


def _augment(sample: CimSample, scale: int | None, flip: bool) -> tuple[np.ndarray, ...]:
    """Image (H', W', 3), boxes and crops for one training view of ``sample``."""
    img, f = (sample.image, 1.0) if scale is None else resize_short_side(sample.image, scale)
    boxes = sample.boxes * f
    crops = sample.crops
    if flip:
        width = img.shape[1]
        img = img[:, ::-1]
        boxes = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width, 0, width, 0]
        crops = crops[:, :, ::-1]
    return np.ascontiguousarray(img), boxes.astype(np.float32), np.ascontiguousarray(crops)


def train_cim(
    model: CimModel,
    samples: Sequence[CimSample],
    settings: CimTrainSettings,
    weights: LossWeights | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``samples`` (only those with proposals and a label); returns
    the per-iteration losses. Deterministic for a seed on CPU."""
    usable = [s for s in samples if len(s.masks) and s.labels.any()]
    if not usable:
        raise ValueError("no training image has both proposals and an image-level label")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [settings.step], 0.1)
    model.train()
    history = []
    for it in range(settings.iterations):
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
        schedule.step()
        record = {k: float(v.detach()) for k, v in losses.items()} | {
            "total": float(total.detach())
        }
        history.append(record)
        if on_step is not None:
            on_step(it, record)
    model.eval()
    return history
