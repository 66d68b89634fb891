"""SeqTR's training recipe as a typed config (``rem train seqtr_* --refs ... --set KEY=VALUE``).

Defaults are SeqTR's ``configs/seqtr/*``: Adam with amsgrad, lr 5e-4, betas (0.9, 0.98), eps
1e-9, gradient norm clip 0.15, batch 128, 5 warmup epochs, EMA of the weights; REC trains 60
epochs with the lr divided by 10 at epoch 50, RES 90 epochs with the decay at 75.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Per task: what differs from the shared recipe.
TASK_RECIPES: dict[str, dict[str, object]] = {
    "box": {"epochs": 60, "decay_epochs": [50]},
    "mask": {"epochs": 90, "decay_epochs": [75]},
}


class SeqTRTrainConfig(BaseModel):
    """Optimiser, schedule, augmentation and snapshot settings of a SeqTR run."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(60, gt=0)
    batch_size: int = Field(128, gt=0, description="global batch: every process together")
    grad_accum: int = Field(1, gt=0, description="micro-batches per process per step")
    lr: float = Field(5e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-9, gt=0)
    amsgrad: bool = True
    clip: float = Field(0.15, ge=0, description="gradient norm clip; 0 = none")
    warmup_epochs: float = Field(5.0, ge=0, description="linear lr warmup, in epochs")
    decay_epochs: list[int] = Field(default_factory=lambda: [50])
    decay_factor: float = Field(0.1, gt=0)
    ema: bool = Field(True, description="keep (and export) an EMA of the weights")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    lsj: bool = Field(True, description="large-scale jitter; false = test-time resize")
    scale_range: tuple[float, float] = (0.3, 1.4)
    seed: int = 0
    checkpoint_every: int = Field(0, ge=0, description="snapshot every N steps too; 0 = epochs")
    keep_checkpoints: int = Field(1, gt=0)


def recipe(task: str) -> SeqTRTrainConfig:
    """SeqTR's published recipe for the ``box`` (REC) or ``mask`` (RES) task."""
    return SeqTRTrainConfig.model_validate(TASK_RECIPES[task])


def lr_factor(step: int, steps_per_epoch: int, config: SeqTRTrainConfig) -> float:
    """Linear warmup over ``warmup_epochs`` then x ``decay_factor`` at each decay epoch.

    A function of the step alone, so training longer (more ``epochs``) or resuming does not
    move the schedule.
    """
    warm = config.warmup_epochs * steps_per_epoch
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    epoch = step / steps_per_epoch
    return factor * config.decay_factor ** sum(epoch >= e for e in config.decay_epochs)
