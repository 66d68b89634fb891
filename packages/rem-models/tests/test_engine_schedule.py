"""Learning-rate schedules against values worked out by hand (detectron2 semantics)."""

from __future__ import annotations

import math

import pytest
import torch

from rem_models.engine.config import TrainConfig
from rem_models.engine.schedule import build_scheduler, lr_multiplier


def test_step_schedule_with_linear_warmup() -> None:
    cfg = TrainConfig(
        steps=100,
        schedule="step",
        milestones=[60, 80],
        gamma=0.1,
        warmup_steps=10,
        warmup_factor=0.001,
    )
    # warmup: 0.001 -> 1 linearly over 10 steps; then 1 until 60, 0.1 until 80, 0.01 after.
    expected = {
        0: 0.001,
        1: 0.001 + 0.999 * 0.1,
        5: 0.5005,
        9: 0.001 + 0.999 * 0.9,
        10: 1.0,
        59: 1.0,
        60: 0.1,
        79: 0.1,
        80: 0.01,
        99: 0.01,
    }
    for step, value in expected.items():
        assert lr_multiplier(step, cfg) == pytest.approx(value, rel=1e-12), step


def test_vitdet_b_recipe_values() -> None:
    """ViTDet-B: 184,375 steps, x0.1 at 163,889 and 177,546, 250 warmup steps from 0.001."""
    cfg = TrainConfig(
        steps=184375, milestones=[163889, 177546], warmup_steps=250, warmup_factor=0.001
    )
    assert lr_multiplier(0, cfg) == pytest.approx(0.001)
    assert lr_multiplier(125, cfg) == pytest.approx(0.5005)
    assert lr_multiplier(163888, cfg) == 1.0
    assert lr_multiplier(163889, cfg) == pytest.approx(0.1)
    assert lr_multiplier(177546, cfg) == pytest.approx(0.01)


def test_cosine_schedule() -> None:
    cfg = TrainConfig(steps=100, schedule="cosine")
    assert lr_multiplier(0, cfg) == 1.0
    assert lr_multiplier(25, cfg) == pytest.approx((1 + math.sqrt(0.5)) / 2)
    assert lr_multiplier(50, cfg) == pytest.approx(0.5)
    assert lr_multiplier(100, cfg) == pytest.approx(0.0, abs=1e-15)
    floor = TrainConfig(steps=100, schedule="cosine", min_lr_factor=0.1)
    assert lr_multiplier(50, floor) == pytest.approx(0.1 + 0.9 * 0.5)


def test_cosine_warmup_ends_on_the_cosine_curve() -> None:
    cfg = TrainConfig(steps=100, schedule="cosine", warmup_steps=10, warmup_factor=0.01)
    at_10 = (1 + math.cos(math.pi * 0.1)) / 2  # 0.97552825...
    assert lr_multiplier(0, cfg) == pytest.approx(0.01)
    assert lr_multiplier(5, cfg) == pytest.approx(0.01 + (at_10 - 0.01) * 0.5)
    assert lr_multiplier(10, cfg) == pytest.approx(at_10)


def test_scheduler_scales_each_group_by_its_own_lr() -> None:
    """Layer-decayed groups keep their ratio: lr = base * scale * multiplier at every step."""
    cfg = TrainConfig(
        steps=6,
        lr=0.2,
        milestones=[4],
        gamma=0.5,
        warmup_steps=2,
        warmup_factor=0.25,
        optimizer="sgd",
    )
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.2}, {"params": [b], "lr": 0.2 * 0.49}], lr=0.2)
    sched = build_scheduler(opt, cfg)
    # multipliers by hand: step0 0.25, step1 0.625, steps 2-3 1, steps 4-5 0.5
    for mult in (0.25, 0.625, 1.0, 1.0, 0.5, 0.5):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * mult)
        assert opt.param_groups[1]["lr"] == pytest.approx(0.2 * 0.49 * mult)
        opt.step()
        sched.step()


def test_config_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="milestones must be increasing"):
        TrainConfig(milestones=[10, 5])
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        TrainConfig(batch_size=3, grad_accum=2)
    with pytest.raises(ValueError, match="cannot be split over 4 processes"):
        TrainConfig(batch_size=4, grad_accum=2).per_process_batch(4)
