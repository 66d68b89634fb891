"""Learning-rate schedules: step or cosine decay after a linear warmup, as lr multipliers.

Semantics follow detectron2's ``WarmupParamScheduler`` over a ``MultiStepParamScheduler`` or
``CosineParamScheduler``: step ``t`` (0-based, the step about to run) of ``T`` uses

* main value ``m(t)``: step: ``gamma ** #{milestones <= t}``; cosine:
  ``f + (1 - f) * (1 + cos(pi * t / T)) / 2`` with ``f = min_lr_factor``; constant: 1;
* during warmup (``t < W``): linear from ``warmup_factor * m(0)`` to ``m(W)``:
  ``warmup_factor * m(0) + (m(W) - warmup_factor * m(0)) * t / W``.

The multiplier scales every parameter group's own base lr, so layer-wise decay is preserved.
"""

from __future__ import annotations

import bisect
import math

import torch

from rem_models.engine.config import TrainConfig


def main_multiplier(step: int, cfg: TrainConfig) -> float:
    """The schedule's value at ``step`` before warmup is applied."""
    if cfg.schedule == "step":
        return cfg.gamma ** bisect.bisect_right(cfg.milestones, step)
    if cfg.schedule == "cosine":
        progress = min(step, cfg.steps) / cfg.steps
        floor = cfg.min_lr_factor
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """The factor on the base lr used by optimiser step ``step`` (0-based)."""
    warmup = cfg.warmup_steps
    if warmup and step < warmup:
        start = cfg.warmup_factor * main_multiplier(0, cfg)
        end = main_multiplier(warmup, cfg)
        return start + (end - start) * step / warmup
    return main_multiplier(step, cfg)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying :func:`lr_multiplier`; stepped once after every optimiser step."""

    def factor(step: int) -> float:
        return lr_multiplier(step, cfg)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
