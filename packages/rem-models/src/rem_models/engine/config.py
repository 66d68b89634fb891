"""The training recipe as one validated config: optimiser, schedule, data and augmentation.

Every field can be changed with ``rem train --set key=value`` (dotted keys reach the nested
``augment`` config); a family's published recipe arrives as ``train_defaults`` on its registry
entry and is applied first. Step counts are optimiser steps (one global batch each), as in
detectron2's ``max_iter``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentConfig(_Strict):
    """Training-time geometric augmentation of an image and its instance masks.

    ``lsj``: large-scale jitter as in ViTDet: horizontal flip, resize so the image fits a square
    of ``scale * image_size`` with ``scale`` uniform in [``min_scale``, ``max_scale``], then a
    random crop of at most ``image_size`` squared (no padding; the model pads).
    ``resize``: resize so the long side is ``image_size`` (flip if ``flip``).
    ``none``: images as read (flip if ``flip``).
    """

    kind: Literal["lsj", "resize", "none"] = "lsj"
    image_size: int = Field(default=1024, ge=8)
    min_scale: float = Field(default=0.1, gt=0)
    max_scale: float = Field(default=2.0, gt=0)
    flip: bool = True
    # Instances whose mask covers fewer pixels than this after augmentation are dropped (the
    # crop can leave slivers); detectron2 drops boxes of (near) zero size.
    min_mask_pixels: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _scales_ordered(self) -> AugmentConfig:
        if self.min_scale > self.max_scale:
            raise ValueError("min_scale must not exceed max_scale")
        return self


class TrainConfig(_Strict):
    """Everything about a training run except the model architecture.

    ``batch_size`` is the global batch (all processes and accumulation steps together); each
    process runs ``batch_size / (world_size * grad_accum)`` images per forward pass.
    """

    steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=2, ge=1)
    grad_accum: int = Field(default=1, ge=1)

    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(default=0.9, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    # Weight decay of normalisation layers' parameters; None: the same as ``weight_decay``.
    weight_decay_norm: float | None = 0.0
    # Per-parameter weight decay by the parameter's own name (its last dotted part), e.g.
    # {"pos_embed": 0.0}; matches detectron2's optimizer ``overrides``.
    weight_decay_overrides: dict[str, float] = Field(default_factory=dict)
    # Layer-wise lr decay rate (ViTDet: 0.7 / 0.8 / 0.9); None disables it.
    layer_decay: float | None = Field(default=None, gt=0, le=1)
    # Number of decayed layers when the model has no ``lr_num_layers`` attribute.
    layer_decay_num_layers: int | None = Field(default=None, ge=1)

    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(default=0.1, gt=0)
    min_lr_factor: float = Field(default=0.0, ge=0)  # cosine end value, relative to lr
    warmup_steps: int = Field(default=0, ge=0)
    warmup_factor: float = Field(default=0.001, ge=0, le=1)

    clip_grad_norm: float | None = Field(default=None, gt=0)
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"

    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    filter_empty: bool = True  # drop training images without any usable instance
    num_workers: int = Field(default=2, ge=0)

    checkpoint_every: int = Field(default=1000, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    log_every: int = Field(default=20, ge=1)
    eval_every: int = Field(default=0, ge=0)  # 0: evaluate only after the last step
    eval_batch_size: int = Field(default=1, ge=1)
    find_unused_parameters: bool = False
    # Bitwise-reproducible CUDA kernels (slower); CPU runs are deterministic anyway.
    deterministic: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of grad_accum {self.grad_accum}"
            )
        if sorted(self.milestones) != self.milestones:
            raise ValueError("milestones must be increasing")
        if self.warmup_steps > self.steps:
            raise ValueError("warmup_steps must not exceed steps")
        return self

    def per_process_batch(self, world_size: int) -> int:
        """Images per forward pass in each process: batch_size / (world_size * grad_accum)."""
        parts = world_size * self.grad_accum
        if self.batch_size % parts:
            raise ValueError(
                f"batch_size {self.batch_size} cannot be split over {world_size} processes x "
                f"{self.grad_accum} accumulation steps"
            )
        return self.batch_size // parts
