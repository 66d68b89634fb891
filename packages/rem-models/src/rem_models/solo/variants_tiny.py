"""Tiny registered variants of the four heads, for CPU tests (128 px images, 3 classes)."""

from __future__ import annotations

from torch import nn

from rem_models.registry import register_model
from rem_models.solo.build import build_solo
from rem_models.solo.config import (
    AggMaskConfig,
    AggMaskHeadConfig,
    AggMaskStarConfig,
    AggMaskStarHeadConfig,
    AggregatorConfig,
    BackboneConfig,
    InputConfig,
    NeckConfig,
    SOLOConfig,
    SOLOHeadConfig,
    SOLOv2Config,
    SOLOv2HeadConfig,
)
from rem_models.solo.convert import convert_checkpoint

TINY_BACKBONE = BackboneConfig(
    depth=18,
    blocks=[1, 1, 1, 1],
    stem_channels=16,
    planes=[16, 32, 64, 128],
    frozen_stages=-1,
    norm_eval=False,
)
TINY_HEAD = {
    "num_grids": [12, 10, 8, 6, 4],
    "scale_ranges": [(1.0, 32.0), (16.0, 64.0), (32.0, 128.0), (64.0, 256.0), (128.0, 512.0)],
    "channels": 32,
    "stacked_convs": 2,
    "norm_groups": 8,
}
# Fewer context channels (13 aggregator inputs, 657 weights per cell) keep CPU tests quick.
TINY_AGGREGATOR = AggregatorConfig(context_channels=8)
_TINY_COMMON = {
    "num_classes": 3,
    "backbone": TINY_BACKBONE,
    "neck": NeckConfig(out_channels=32),
    "input": InputConfig(test_scale=None),
}
# Not the reference recipe: AdamW converges in the few hundred CPU steps a test can afford.
TINY_TRAIN = {
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "clip_grad_norm": 35.0,
    "batch_size": 2,
    "schedule": "step",
    "warmup_steps": 10,
    "warmup_factor": 0.1,
    "augment.kind": "none",
    "augment.flip": False,
}

_TINY = [
    (
        "solo_test",
        SOLOConfig(head=SOLOHeadConfig(**TINY_HEAD), **_TINY_COMMON),
        "Tiny SOLO for CPU tests.",
    ),
    (
        "solov2_test",
        SOLOv2Config(
            head=SOLOv2HeadConfig(kernel_channels=32, mask_feature_channels=16, **TINY_HEAD),
            **_TINY_COMMON,
        ),
        "Tiny SOLOv2 for CPU tests.",
    ),
    (
        "aggmask_test",
        AggMaskConfig(
            head=AggMaskHeadConfig(
                weight_kernel=1, weight_init_std=0.01, aggregator=TINY_AGGREGATOR, **TINY_HEAD
            ),
            **_TINY_COMMON,
        ),
        "Tiny AggMask for CPU tests.",
    ),
    (
        "aggmask_star_test",
        AggMaskStarConfig(
            head=AggMaskStarHeadConfig(
                weight_init_std=0.01, aggregator=TINY_AGGREGATOR, **TINY_HEAD
            ),
            **_TINY_COMMON,
        ),
        "Tiny AggMask* for CPU tests.",
    ),
]


def _register_tiny(name: str, config: object, summary: str) -> None:
    def builder(cfg: object) -> nn.Module:
        return build_solo(cfg)  # type: ignore[arg-type]

    builder.__doc__ = summary
    builder.__name__ = name
    register_model(
        name,
        config=config,
        converter=convert_checkpoint,
        train_defaults=TINY_TRAIN,  # type: ignore[arg-type]
    )(builder)


for _name, _tiny_config, _summary in _TINY:
    _register_tiny(_name, _tiny_config, _summary)
