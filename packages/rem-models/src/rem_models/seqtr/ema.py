"""Exponential moving average of a model's parameters and buffers (SeqTR's EMA)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``ema`` = decay * ema + (1 - decay) * model after each step.

    decay = min(max_decay, (t + 1) / (t + 10)) at update t, so early updates follow the model
    closely. Floating buffers (BatchNorm statistics) are averaged too; integer buffers
    (``num_batches_tracked``) are copied.
    """

    def __init__(self, model: nn.Module, max_decay: float = 0.999) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.max_decay = max_decay
        self.updates = 0

    def decay(self) -> float:
        return min(self.max_decay, (self.updates + 1) / (self.updates + 10))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        self.updates += 1
        current = model.state_dict()
        for name, value in self.ema.state_dict().items():
            new = current[name].detach()
            if value.dtype.is_floating_point:
                value.mul_(d).add_(new.to(value.dtype), alpha=1 - d)
            else:
                value.copy_(new)
