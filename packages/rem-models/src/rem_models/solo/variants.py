"""Registered SOLO-family variants: the reference config tables, as data.

SOLO / SOLOv2 (here): every model of the SOLO repository's table (WXinlong/SOLO, mmdetection
1.0) except Decoupled SOLO. AggMask / AggMask* (:mod:`rem_models.solo.variants_aggmask`): every
config of the AggMask repository's table. Tiny ``*_test`` variants for CPU tests:
:mod:`rem_models.solo.variants_tiny`. Importing this module registers all of them.
"""

from __future__ import annotations

from torch import nn

from rem_models.registry import register_model
from rem_models.solo import variants_aggmask, variants_tiny
from rem_models.solo.build import build_solo
from rem_models.solo.config import SOLOConfig, SOLOv2Config, SOLOv2HeadConfig
from rem_models.solo.convert import convert_checkpoint
from rem_models.solo.recipes import (
    IMAGENET_R50,
    IMAGENET_R101,
    LIGHT_SHORT,
    MULTI_SCALE,
    SINGLE_SCALE,
    SOLO_1X,
    SOLO_3X,
    SOLOV2_1X,
    SOLOV2_3X,
    backbone,
    imagenet_weights,
    inputs,
    solo_weights,
)
from rem_models.weights import Weights

__all__ = ["variants_aggmask", "variants_tiny"]

# ---------------------------------------------------------------------------------------------
# SOLO


def _solo(depth: int, scales: list[tuple[int, int]]) -> SOLOConfig:
    return SOLOConfig(backbone=backbone(depth), input=inputs(scales))


@register_model(
    "solo_r50_1x",
    config=_solo(50, SINGLE_SCALE),
    converter=convert_checkpoint,
    train_defaults=SOLO_1X,
    weights=[
        solo_weights("coco-1x", "nTOgDldI4dvDrPs", 36_301_232, 32.9, "solo_r50_fpn_8gpu_1x", False),
        IMAGENET_R50,
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
        solo_weights("coco-3x", "x4Fb4XQ0OmkBvaQ", 36_301_232, 35.8, "solo_r50_fpn_8gpu_3x", True),
        IMAGENET_R50,
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
        solo_weights("coco-3x", "WxOFQzHhhKQGxDG", 55_293_360, 37.1, "solo_r101_fpn_8gpu_3x", True),
        IMAGENET_R101,
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
        backbone=backbone(depth, dcn=dcn, **backbone_kw), head=head, input=inputs(scales)
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
        input=inputs([(long_edge, s) for s in LIGHT_SHORT], (long_edge, short)),
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
            solo_weights(
                "coco-1x", "DvjgeaPCarKZoVL", 46_592_912, 34.8, "solov2_r50_fpn_8gpu_1x", False
            ),
            IMAGENET_R50,
        ],
        "SOLOv2, ResNet-50 FPN, 1x schedule (COCO minival mask AP 34.8).",
    ),
    (
        "solov2_r50_3x",
        _solov2(50, MULTI_SCALE),
        SOLOV2_3X,
        [
            solo_weights("coco-3x", "nkxN1FipqkbfoKX", 46_592_912, 37.5, _V2.format("r50"), True),
            IMAGENET_R50,
        ],
        "SOLOv2, ResNet-50 FPN, 3x multi-scale (COCO minival mask AP 37.5).",
    ),
    (
        "solov2_r101_3x",
        _solov2(101, MULTI_SCALE),
        SOLOV2_3X,
        [
            solo_weights("coco-3x", "61WDqq67tbw1sdw", 65_585_040, 39.1, _V2.format("r101"), True),
            IMAGENET_R101,
        ],
        "SOLOv2, ResNet-101 FPN, 3x multi-scale (COCO minival mask AP 39.1).",
    ),
    (
        "solov2_r101_dcn_3x",
        _solov2(101, MULTI_SCALE, dcn="dcnv2"),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x", "4ePTr9mQeOpw0RZ", 68_729_118, 41.4, _V2.format("r101_dcn"), True
            ),
            IMAGENET_R101,
        ],
        "SOLOv2, ResNet-101 + DCNv2 FPN, 3x multi-scale (COCO minival mask AP 41.4).",
    ),
    (
        "solov2_x101_dcn_3x",
        _solov2(101, MULTI_SCALE, dcn="dcnv2", groups=64, width_per_group=4),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x", "KV9PevGeV8r4Tzj", 113_420_574, 42.4, _V2.format("x101_dcn"), True
            )
        ],
        "SOLOv2, ResNeXt-101 64x4d + DCNv2 FPN, 3x multi-scale (COCO minival mask AP 42.4).",
    ),
    (
        "solov2_light_448_r18_3x",
        _solov2_light(18, 448),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x",
                "HwHys05haPvNyAY",
                18_271_760,
                29.6,
                "solov2_light_448_r18_fpn_8gpu_3x",
                True,
            ),
            imagenet_weights("resnet18-f37072fd.pth", "ResNet-18"),
        ],
        "SOLOv2-Light, ResNet-18 FPN, 448 px (COCO minival mask AP 29.6).",
    ),
    (
        "solov2_light_448_r34_3x",
        _solov2_light(34, 448),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x",
                "QLQpXg9ny7sNA6X",
                28_379_920,
                32.0,
                "solov2_light_448_r34_fpn_8gpu_3x",
                True,
            ),
            imagenet_weights("resnet34-b627a593.pth", "ResNet-34"),
        ],
        "SOLOv2-Light, ResNet-34 FPN, 448 px (COCO minival mask AP 32.0).",
    ),
    (
        "solov2_light_448_r50_3x",
        _solov2_light(50, 448),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x",
                "cn1jABtVJwsbb2G",
                31_340_560,
                33.7,
                "solov2_light_448_r50_fpn_8gpu_3x",
                True,
            ),
            IMAGENET_R50,
        ],
        "SOLOv2-Light, ResNet-50 FPN, 448 px (COCO minival mask AP 33.7).",
    ),
    (
        "solov2_light_512_dcn_r50_3x",
        _solov2_light(50, 512, dcn="dcn"),
        SOLOV2_3X,
        [
            solo_weights(
                "coco-3x",
                "pndBdr1kGOU2iHO",
                33_185_054,
                36.4,
                "solov2_light_512_dcn_r50_fpn_8gpu_3x",
                True,
            ),
            IMAGENET_R50,
        ],
        "SOLOv2-Light, ResNet-50 + DCN FPN, 512 px (COCO minival mask AP 36.4).",
    ),
]:
    _register_solov2(_name, _config, _train, _weights_list, _summary)
