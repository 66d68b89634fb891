"""Registered AggMask and AggMask* variants (advdfacd/AggMask ``configs/aggmask``).

Every config of the repository's table, plus the 60-50-36-16-12 category-grid AggMask* of its
test-dev entry. Their weights are on Google Drive behind viewer pages (not fetchable by URL),
so only the ImageNet backbone records are attached; convert a downloaded file with
``rem convert-checkpoint``.
"""

from __future__ import annotations

from torch import nn

from rem_models.registry import register_model
from rem_models.solo.build import build_solo
from rem_models.solo.config import (
    AggMaskConfig,
    AggMaskHeadConfig,
    AggMaskStarConfig,
    AggMaskStarHeadConfig,
    InferenceConfig,
)
from rem_models.solo.convert import convert_checkpoint
from rem_models.solo.recipes import (
    AGGMASK_3X,
    AGGMASK_STAR_6X,
    IMAGENET_R50,
    IMAGENET_R101,
    MULTI_SCALE,
    backbone,
    inputs,
)

HALF_MASK_GRIDS = [20, 18, 12, 8, 6]
CLS_GRIDS = [50, 40, 24, 16, 12]
CLS_GRIDS_60 = [60, 50, 36, 16, 12]


def _aggmask(
    depth: int,
    *,
    grids: list[int] | None = None,
    mask_grids: list[int] | None = None,
    max_per_img: int = 100,
) -> AggMaskConfig:
    head = AggMaskHeadConfig(**({"num_grids": grids} if grids else {}), mask_grids=mask_grids)
    return AggMaskConfig(
        backbone=backbone(depth),
        head=head,
        input=inputs(MULTI_SCALE),
        test=InferenceConfig(max_per_img=max_per_img),
    )


def _aggmask_star(
    depth: int, *, grids: list[int] | None = None, mask_grids: list[int] | None = None
) -> AggMaskStarConfig:
    head = AggMaskStarHeadConfig(**({"num_grids": grids} if grids else {}), mask_grids=mask_grids)
    return AggMaskStarConfig(
        backbone=backbone(depth),
        head=head,
        input=inputs(MULTI_SCALE),
        test=InferenceConfig(max_per_img=300),
    )


_AGG = [
    (
        "aggmask_r50",
        _aggmask(50),
        "AggMask, ResNet-50 FPN (COCO minival mask AP 37.9, LVIS AP* 40.0).",
    ),
    (
        "aggmask_r101",
        _aggmask(101),
        "AggMask, ResNet-101 FPN (COCO minival mask AP 38.6, LVIS AP* 41.2).",
    ),
    (
        "aggmask_r101_cls_grid",
        _aggmask(101, grids=CLS_GRIDS, mask_grids=[40, 36, 24, 16, 12], max_per_img=300),
        "AggMask, ResNet-101 FPN, +cls-grid 50-40-24-16-12 (mask AP 39.1, test-dev 39.5).",
    ),
    (
        "aggmask_r101_half_mask_grid",
        _aggmask(101, mask_grids=HALF_MASK_GRIDS),
        "AggMask, ResNet-101 FPN, -mask-grid 20-18-12-8-6 (COCO minival mask AP 38.8).",
    ),
    (
        "aggmask_star_r50",
        _aggmask_star(50),
        "AggMask*, ResNet-50 FPN (COCO minival mask AP 38.7, LVIS AP* 41.0).",
    ),
    (
        "aggmask_star_r101",
        _aggmask_star(101),
        "AggMask*, ResNet-101 FPN (COCO minival mask AP 39.4, LVIS AP* 42.3).",
    ),
    (
        "aggmask_star_r101_cls_grid",
        _aggmask_star(101, grids=CLS_GRIDS, mask_grids=[40, 36, 24, 16, 12]),
        "AggMask*, ResNet-101 FPN, +cls-grid 50-40-24-16-12 (COCO minival mask AP 39.7).",
    ),
    (
        "aggmask_star_r101_half_mask_grid",
        _aggmask_star(101, mask_grids=HALF_MASK_GRIDS),
        "AggMask*, ResNet-101 FPN, -mask-grid 20-18-12-8-6 (COCO minival mask AP 39.2).",
    ),
    (
        "aggmask_star_r101_cls_grid_60",
        _aggmask_star(101, grids=CLS_GRIDS_60, mask_grids=[40, 36, 24, 16, 12]),
        "AggMask*, ResNet-101 FPN, cls-grid 60-50-36-16-12 (COCO test-dev mask AP 40.6).",
    ),
]


def _register_aggmask(name: str, config: AggMaskConfig | AggMaskStarConfig, summary: str) -> None:
    def builder(cfg: AggMaskConfig | AggMaskStarConfig) -> nn.Module:
        return build_solo(cfg)

    builder.__doc__ = summary
    builder.__name__ = name
    star = isinstance(config, AggMaskStarConfig)
    register_model(
        name,
        config=config,
        converter=convert_checkpoint,
        train_defaults=AGGMASK_STAR_6X if star else AGGMASK_3X,
        weights=[IMAGENET_R101 if config.backbone.depth == 101 else IMAGENET_R50],
    )(builder)


for _name, _agg_config, _summary in _AGG:
    _register_aggmask(_name, _agg_config, _summary)
