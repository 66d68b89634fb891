"""Assembling a :class:`SOLODetector` from one of the family's configs."""

from __future__ import annotations

from rem_models.solo.aggmask_head import AggMaskHead, AggregatorSettings
from rem_models.solo.aggmask_star_head import AggMaskStarHead
from rem_models.solo.config import (
    AggMaskConfig,
    AggMaskHeadConfig,
    AggMaskStarConfig,
    BackboneConfig,
    GridHeadConfig,
    SOLOConfig,
    SoloFamilyConfig,
    SOLOv2Config,
)
from rem_models.solo.fpn import FPN
from rem_models.solo.grid_head import GridHead, LossSettings
from rem_models.solo.mask_feature import MaskFeatureHead
from rem_models.solo.model import SOLODetector
from rem_models.solo.resnet import ResNet
from rem_models.solo.solo_head import SOLOHead
from rem_models.solo.solov2_head import SOLOv2Head
from rem_models.solo.targets import GridAssigner


def _dcn(kind: str) -> str | None:
    return None if kind == "none" else kind


def build_backbone(cfg: BackboneConfig) -> ResNet:
    return ResNet(
        cfg.depth,
        blocks=cfg.blocks,
        stem_channels=cfg.stem_channels,
        planes=cfg.planes,
        groups=cfg.groups,
        width_per_group=cfg.width_per_group,
        frozen_stages=cfg.frozen_stages,
        norm_eval=cfg.norm_eval,
        dcn=_dcn(cfg.dcn),
        stage_with_dcn=cfg.stage_with_dcn,
    )


def _assigner(head: GridHeadConfig, num_classes: int) -> GridAssigner:
    return GridAssigner(
        grids=tuple(head.num_grids),
        scale_ranges=tuple(tuple(r) for r in head.scale_ranges),  # type: ignore[misc]
        sigma=head.sigma,
        min_mask_pixels=head.min_mask_pixels,
        background=num_classes,
    )


def _loss(head: GridHeadConfig) -> LossSettings:
    return LossSettings(head.dice_weight, head.focal_alpha, head.focal_gamma)


def _aggregator(head: AggMaskHeadConfig) -> AggregatorSettings:
    a = head.aggregator
    return AggregatorSettings(
        head.num_grids,
        head.mask_grids or head.num_grids,
        a.neighbours,
        a.context_channels,
        a.layers,
        a.kernel_size,
        a.hidden_channels,
    )


def build_head(config: SoloFamilyConfig, in_channels: int) -> GridHead:
    """The family head of ``config`` over ``in_channels``-wide pyramid levels."""
    head = config.head
    common = {
        "grids": head.num_grids,
        "strides": head.strides,
        "assigner": _assigner(head, config.num_classes),
        "channels": head.channels,
        "stacked_convs": head.stacked_convs,
        "norm_groups": head.norm_groups,
        "loss": _loss(head),
    }
    if isinstance(config, SOLOConfig):
        return SOLOHead(config.num_classes, in_channels, **common)  # type: ignore[arg-type]
    if isinstance(config, SOLOv2Config):
        h = config.head
        return SOLOv2Head(
            config.num_classes,
            in_channels,
            kernel_channels=h.kernel_channels,
            dcn=_dcn(h.tower_dcn),
            dcn_convs=h.dcn_convs,
            **common,  # type: ignore[arg-type]
        )
    assert isinstance(config, AggMaskConfig | AggMaskStarConfig)
    h = config.head
    head_type = AggMaskHead if isinstance(config, AggMaskConfig) else AggMaskStarHead
    return head_type(
        config.num_classes,
        in_channels,
        mask_grids=h.mask_grids or h.num_grids,
        aggregator=_aggregator(h),
        weight_kernel=h.weight_kernel,
        weight_activation=h.weight_activation,
        weight_init_std=h.weight_init_std,
        **common,  # type: ignore[arg-type]
    )


def build_solo(config: SoloFamilyConfig) -> SOLODetector:
    """The detector described by ``config`` (fresh initialisation, no weights loaded)."""
    backbone = build_backbone(config.backbone)
    neck = FPN(backbone.out_channels, config.neck.out_channels)
    head = build_head(config, config.neck.out_channels)
    mask_feat_head = None
    if isinstance(config, SOLOv2Config):
        h = config.head
        mask_feat_head = MaskFeatureHead(
            config.neck.out_channels,
            h.mask_feature_channels,
            h.kernel_channels,
            norm_groups=h.norm_groups,
            dcn=_dcn(h.mask_feature_dcn),
        )
    i = config.input
    return SOLODetector(
        backbone,
        neck,
        head,
        mask_feat_head,
        test=config.test,
        pixel_mean=i.pixel_mean,
        pixel_std=i.pixel_std,
        size_divisor=i.size_divisor,
        test_scale=i.test_scale,
        train_scales=i.train_scales,
    )
