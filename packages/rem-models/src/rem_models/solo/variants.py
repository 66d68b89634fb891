"""Registered SOLO-family variants: the reference config tables, as data.

SOLO / SOLOv2: every model of the SOLO repository's table (WXinlong/SOLO, mmdetection 1.0)
except Decoupled SOLO. AggMask / AggMask*: every config of the AggMask repository's table
(advdfacd/AggMask), plus the 60-50-36-16-12 category-grid AggMask* used for its test-dev entry.
``*_test`` variants are tiny (a 4-block ResNet of width 16, 32-channel towers) for CPU tests.

Training recipes (``train_defaults``): SGD lr 0.01, momentum 0.9, weight decay 1e-4 on every
parameter, batch 16, gradient clipping at 35, 500 linear warmup steps, steps x0.1 at the
listed epochs. The model rescales its inputs (mmdet's keep-ratio ``Resize``: single scale 1333 x
800, or a short side drawn from 640-800 for the multi-scale "3x" models), so the engine's own
augmentation is only the horizontal flip.
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
    AggregatorConfig,
    BackboneConfig,
    InferenceConfig,
    InputConfig,
    NeckConfig,
    SOLOConfig,
    SOLOHeadConfig,
    SOLOv2Config,
    SOLOv2HeadConfig,
)
from rem_models.solo.convert import convert_checkpoint
from rem_models.weights import Weights

# ceil(117,266 COCO train2017 images with annotations / 16 images per step).
STEPS_PER_EPOCH = 7330

SINGLE_SCALE = [(1333, 800)]
MULTI_SCALE = [(1333, s) for s in (800, 768, 736, 704, 672, 640)]
_LIGHT_SHORT = (512, 480, 448, 416, 384, 352)

_SOLO_SOURCE = (
    "SOLO (Wang et al., ECCV 2020) / SOLOv2 (Wang et al., NeurIPS 2020), WXinlong/SOLO model "
    "zoo; the cloudstor.aarnet.edu.au links of its README closed with that service in 2023, "
    "a copy is kept at huggingface.co/xinlongwang/SOLO"
)


def recipe(epochs: int, milestones: tuple[int, int], warmup_factor: float) -> dict[str, object]:
    """The reference schedule as rem ``TrainConfig`` overrides (epochs -> optimiser steps)."""
    return {
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "weight_decay_norm": None,
        "clip_grad_norm": 35.0,
        "batch_size": 16,
        "schedule": "step",
        "steps": epochs * STEPS_PER_EPOCH,
        "milestones": [m * STEPS_PER_EPOCH for m in milestones],
        "gamma": 0.1,
        "warmup_steps": 500,
        "warmup_factor": warmup_factor,
        "augment.kind": "none",
        "augment.flip": True,
    }


SOLO_1X = recipe(12, (9, 11), 1 / 3)
SOLO_3X = recipe(36, (27, 33), 1 / 3)
SOLOV2_1X = recipe(12, (9, 11), 0.01)
SOLOV2_3X = recipe(36, (27, 33), 0.01)
AGGMASK_3X = recipe(36, (27, 33), 1 / 3)
AGGMASK_STAR_6X = recipe(72, (54, 66), 1 / 3)


def _weights(name: str, link: str, params: int, ap: float, config: str, multi: bool) -> Weights:
    return Weights(
        name=name,
        url=f"https://cloudstor.aarnet.edu.au/plus/s/{link}/download",
        file_format="mmcv",
        num_params=params,
        metrics={"coco/mask_ap": ap},
        recipe=f"{config}: COCO train2017, {'multi-scale' if multi else 'single-scale'} "
        "training, SGD lr 0.01, batch 16; mask AP on minival (val2017)",
        source=_SOLO_SOURCE,
    )


def _imagenet(file: str, arch: str) -> Weights:
    return Weights(
        name="imagenet-backbone",
        url=f"https://download.pytorch.org/models/{file}",
        file_format="torch",
        recipe=f"torchvision ImageNet-1K {arch} classifier; backbone only: `rem "
        "convert-checkpoint` places it in a freshly initialised model (seed 0), the "
        "reference's start",
        source="torchvision",
    )


_R50 = _imagenet("resnet50-0676ba61.pth", "ResNet-50")
_R101 = _imagenet("resnet101-63fe2227.pth", "ResNet-101")


def backbone(depth: int, *, dcn: str = "none", **kw: object) -> BackboneConfig:
    stages = [False, True, True, True] if dcn != "none" else [False] * 4
    return BackboneConfig(depth=depth, dcn=dcn, stage_with_dcn=stages, **kw)  # type: ignore[arg-type]


def _inputs(scales: list[tuple[int, int]], test: tuple[int, int] = (1333, 800)) -> InputConfig:
    return InputConfig(test_scale=test, train_scales=scales)


# ---------------------------------------------------------------------------------------------
# SOLO


def _solo(depth: int, scales: list[tuple[int, int]]) -> SOLOConfig:
    return SOLOConfig(backbone=backbone(depth), input=_inputs(scales))


@register_model(
    "solo_r50_1x",
    config=_solo(50, SINGLE_SCALE),
    converter=convert_checkpoint,
    train_defaults=SOLO_1X,
    weights=[
        _weights("coco-1x", "nTOgDldI4dvDrPs", 36_301_232, 32.9, "solo_r50_fpn_8gpu_1x", False),
        _R50,
    ],
)
def solo_r50_1x(config: SOLOConfig) -> nn.Module:
    """SOLO, ResNet-50 FPN, 1x schedule (COCO minival mask AP 32.9)."""
    return build_solo(config)


@register_model(
    "solo_r50_3x",
    config=_solo(50, MULTI_SCALE),
    converter=convert_checkpoint,
    train_defaults=SOLO_3X,
    weights=[
        _weights("coco-3x", "x4Fb4XQ0OmkBvaQ", 36_301_232, 35.8, "solo_r50_fpn_8gpu_3x", True),
        _R50,
    ],
)
def solo_r50_3x(config: SOLOConfig) -> nn.Module:
    """SOLO, ResNet-50 FPN, 3x multi-scale (COCO minival mask AP 35.8)."""
    return build_solo(config)


@register_model(
    "solo_r101_3x",
    config=_solo(101, MULTI_SCALE),
    converter=convert_checkpoint,
    train_defaults=SOLO_3X,
    weights=[
        _weights("coco-3x", "WxOFQzHhhKQGxDG", 55_293_360, 37.1, "solo_r101_fpn_8gpu_3x", True),
        _R101,
    ],
)
def solo_r101_3x(config: SOLOConfig) -> nn.Module:
    """SOLO, ResNet-101 FPN, 3x multi-scale (COCO minival mask AP 37.1)."""
    return build_solo(config)


# ---------------------------------------------------------------------------------------------
# SOLOv2


def _solov2(
    depth: int,
    scales: list[tuple[int, int]],
    *,
    dcn: str = "none",
    **backbone_kw: object,
) -> SOLOv2Config:
    head = SOLOv2HeadConfig(tower_dcn=dcn, mask_feature_dcn=dcn)  # type: ignore[arg-type]
    return SOLOv2Config(
        backbone=backbone(depth, dcn=dcn, **backbone_kw), head=head, input=_inputs(scales)
    )


def _solov2_light(depth: int, short: int, *, dcn: str = "none") -> SOLOv2Config:
    if short == 448:
        ranges = [(1.0, 56.0), (28.0, 112.0), (56.0, 224.0), (112.0, 448.0), (224.0, 896.0)]
        long_edge, convs = 768, 2
    else:
        ranges = [(1.0, 64.0), (32.0, 128.0), (64.0, 256.0), (128.0, 512.0), (256.0, 2048.0)]
        long_edge, convs = 852, 3
    head = SOLOv2HeadConfig(
        channels=256,
        stacked_convs=convs,
        kernel_channels=128,
        scale_ranges=ranges,
        tower_dcn=dcn,  # type: ignore[arg-type]
        dcn_convs="last",
    )
    return SOLOv2Config(
        backbone=backbone(depth, dcn=dcn),
        head=head,
        input=_inputs([(long_edge, s) for s in _LIGHT_SHORT], (long_edge, short)),
    )


def _register_solov2(
    name: str,
    config: SOLOv2Config,
    train: dict[str, object],
    weights: list[Weights],
    summary: str,
) -> None:
    def builder(cfg: SOLOv2Config) -> nn.Module:
        return build_solo(cfg)

    builder.__doc__ = summary
    builder.__name__ = name
    register_model(
        name, config=config, converter=convert_checkpoint, train_defaults=train, weights=weights
    )(builder)


_V2 = "solov2_{}_fpn_8gpu_3x"
for _name, _config, _train, _weights_list, _summary in [
    (
        "solov2_r50_1x",
        _solov2(50, SINGLE_SCALE),
        SOLOV2_1X,
        [
            _weights(
                "coco-1x", "DvjgeaPCarKZoVL", 46_592_912, 34.8, "solov2_r50_fpn_8gpu_1x", False
            ),
            _R50,
        ],
        "SOLOv2, ResNet-50 FPN, 1x schedule (COCO minival mask AP 34.8).",
    ),
    (
        "solov2_r50_3x",
        _solov2(50, MULTI_SCALE),
        SOLOV2_3X,
        [_weights("coco-3x", "nkxN1FipqkbfoKX", 46_592_912, 37.5, _V2.format("r50"), True), _R50],
        "SOLOv2, ResNet-50 FPN, 3x multi-scale (COCO minival mask AP 37.5).",
    ),
    (
        "solov2_r101_3x",
        _solov2(101, MULTI_SCALE),
        SOLOV2_3X,
        [_weights("coco-3x", "61WDqq67tbw1sdw", 65_585_040, 39.1, _V2.format("r101"), True), _R101],
        "SOLOv2, ResNet-101 FPN, 3x multi-scale (COCO minival mask AP 39.1).",
    ),
    (
        "solov2_r101_dcn_3x",
        _solov2(101, MULTI_SCALE, dcn="dcnv2"),
        SOLOV2_3X,
        [
            _weights("coco-3x", "4ePTr9mQeOpw0RZ", 68_729_118, 41.4, _V2.format("r101_dcn"), True),
            _R101,
        ],
        "SOLOv2, ResNet-101 + DCNv2 FPN, 3x multi-scale (COCO minival mask AP 41.4).",
    ),
    (
        "solov2_x101_dcn_3x",
        _solov2(101, MULTI_SCALE, dcn="dcnv2", groups=64, width_per_group=4),
        SOLOV2_3X,
        [_weights("coco-3x", "KV9PevGeV8r4Tzj", 113_420_574, 42.4, _V2.format("x101_dcn"), True)],
        "SOLOv2, ResNeXt-101 64x4d + DCNv2 FPN, 3x multi-scale (COCO minival mask AP 42.4).",
    ),
    (
        "solov2_light_448_r18_3x",
        _solov2_light(18, 448),
        SOLOV2_3X,
        [
            _weights(
                "coco-3x",
                "HwHys05haPvNyAY",
                18_271_760,
                29.6,
                "solov2_light_448_r18_fpn_8gpu_3x",
                True,
            ),
            _imagenet("resnet18-f37072fd.pth", "ResNet-18"),
        ],
        "SOLOv2-Light, ResNet-18 FPN, 448 px (COCO minival mask AP 29.6).",
    ),
    (
        "solov2_light_448_r34_3x",
        _solov2_light(34, 448),
        SOLOV2_3X,
        [
            _weights(
                "coco-3x",
                "QLQpXg9ny7sNA6X",
                28_379_920,
                32.0,
                "solov2_light_448_r34_fpn_8gpu_3x",
                True,
            ),
            _imagenet("resnet34-b627a593.pth", "ResNet-34"),
        ],
        "SOLOv2-Light, ResNet-34 FPN, 448 px (COCO minival mask AP 32.0).",
    ),
    (
        "solov2_light_448_r50_3x",
        _solov2_light(50, 448),
        SOLOV2_3X,
        [
            _weights(
                "coco-3x",
                "cn1jABtVJwsbb2G",
                31_340_560,
                33.7,
                "solov2_light_448_r50_fpn_8gpu_3x",
                True,
            ),
            _R50,
        ],
        "SOLOv2-Light, ResNet-50 FPN, 448 px (COCO minival mask AP 33.7).",
    ),
    (
        "solov2_light_512_dcn_r50_3x",
        _solov2_light(50, 512, dcn="dcn"),
        SOLOV2_3X,
        [
            _weights(
                "coco-3x",
                "pndBdr1kGOU2iHO",
                33_185_054,
                36.4,
                "solov2_light_512_dcn_r50_fpn_8gpu_3x",
                True,
            ),
            _R50,
        ],
        "SOLOv2-Light, ResNet-50 + DCN FPN, 512 px (COCO minival mask AP 36.4).",
    ),
]:
    _register_solov2(_name, _config, _train, _weights_list, _summary)


# ---------------------------------------------------------------------------------------------
# AggMask and AggMask* (weights are on Google Drive: viewer links, not fetchable by URL)

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
        input=_inputs(MULTI_SCALE),
        test=InferenceConfig(max_per_img=max_per_img),
    )


def _aggmask_star(
    depth: int, *, grids: list[int] | None = None, mask_grids: list[int] | None = None
) -> AggMaskStarConfig:
    head = AggMaskStarHeadConfig(**({"num_grids": grids} if grids else {}), mask_grids=mask_grids)
    return AggMaskStarConfig(
        backbone=backbone(depth),
        head=head,
        input=_inputs(MULTI_SCALE),
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
        weights=[_R101 if config.backbone.depth == 101 else _R50],
    )(builder)


for _name, _agg_config, _summary in _AGG:
    _register_aggmask(_name, _agg_config, _summary)


# ---------------------------------------------------------------------------------------------
# Tiny variants for CPU tests: 128 px images, 3 classes.

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
