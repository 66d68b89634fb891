"""Typed configuration of the SOLO family; defaults are the released COCO R-50 models.

Every number mirrors the reference configs (SOLO ``configs/solo|solov2``, AggMask
``configs/aggmask``): the variants in :mod:`rem_models.solo.variants` change a few fields.
One config class per architecture, sharing the backbone, neck, input and inference parts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rem_models.registry import ModelConfig

DCN = Literal["none", "dcn", "dcnv2"]
"""Deformable convs: none, mmdet's ``DCN`` (v1, offsets) or ``DCNv2`` (modulated)."""


class BackboneConfig(ModelConfig):
    """ResNet / ResNeXt (torchvision layout, mmdet's ``style='pytorch'``)."""

    depth: Literal[18, 34, 50, 101, 152] = 50
    blocks: list[int] | None = Field(None, description="blocks per stage; None: the depth's")
    stem_channels: int = Field(64, gt=0)
    planes: list[int] = Field(default_factory=lambda: [64, 128, 256, 512])
    groups: int = Field(1, gt=0, description="ResNeXt cardinality")
    width_per_group: int = Field(64, gt=0)
    frozen_stages: int = Field(1, ge=-1, le=4, description="stem + this many stages frozen")
    norm_eval: bool = Field(True, description="BatchNorm kept in eval mode when training")
    dcn: DCN = "none"
    stage_with_dcn: list[bool] = Field(default_factory=lambda: [False, False, False, False])


class NeckConfig(ModelConfig):
    """FPN over C2..C5 plus a max-pooled P6."""

    out_channels: int = Field(256, gt=0)


class InputConfig(ModelConfig):
    """Normalisation and the image scales of the reference pipelines (mmdet ``Resize``).

    A scale (long, short) resizes keeping the aspect ratio so that the long side is at most
    ``long`` and the short side at most ``short`` (one of them equal). ``test_scale`` None:
    use images as given. ``train_scales``: one drawn per image when training (multi-scale
    training); empty: as given.
    """

    pixel_mean: list[float] = Field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = Field(default_factory=lambda: [58.395, 57.12, 57.375])
    test_scale: tuple[int, int] | None = (1333, 800)
    train_scales: list[tuple[int, int]] = Field(default_factory=list)
    size_divisor: int = Field(32, gt=0)


class InferenceConfig(ModelConfig):
    """SOLO's ``test_cfg``."""

    score_thr: float = Field(0.1, ge=0, le=1)
    mask_thr: float = Field(0.5, gt=0, lt=1)
    nms_pre: int = Field(500, gt=0)
    update_thr: float = Field(0.05, ge=0, le=1)
    kernel: Literal["gaussian", "linear"] = "gaussian"
    sigma: float = Field(2.0, gt=0)
    max_per_img: int = Field(100, gt=0)


def _solo_scale_ranges() -> list[tuple[float, float]]:
    return [(1.0, 96.0), (48.0, 192.0), (96.0, 384.0), (192.0, 768.0), (384.0, 2048.0)]


class GridHeadConfig(ModelConfig):
    """What every SOLO-family head shares: grids, levels, assignment and loss weights."""

    num_grids: list[int] = Field(default_factory=lambda: [40, 36, 24, 16, 12])
    strides: list[int] = Field(default_factory=lambda: [8, 8, 16, 32, 32])
    scale_ranges: list[tuple[float, float]] = Field(default_factory=_solo_scale_ranges)
    sigma: float = Field(0.2, gt=0, description="centre region: the box scaled by sigma")
    min_mask_pixels: int = Field(10, ge=1, description="smaller masks are not assigned")
    channels: int = Field(256, gt=0, description="tower width (seg_feat_channels)")
    stacked_convs: int = Field(7, ge=1)
    norm_groups: int = Field(32, gt=0, description="GroupNorm groups in the towers")
    dice_weight: float = Field(3.0, ge=0)
    focal_alpha: float = Field(0.25, ge=0, le=1)
    focal_gamma: float = Field(2.0, ge=0)

    @model_validator(mode="after")
    def _levels(self) -> GridHeadConfig:
        n = len(self.num_grids)
        if n != 5 or len(self.strides) != n or len(self.scale_ranges) != n:
            raise ValueError("num_grids, strides and scale_ranges need 5 entries (P2..P6)")
        if min(self.num_grids) < 2:
            raise ValueError("grids must be at least 2 x 2")
        if self.channels % self.norm_groups:
            raise ValueError(f"channels {self.channels} not divisible by {self.norm_groups}")
        return self


class SOLOHeadConfig(GridHeadConfig):
    """SOLO: per level, an S^2-channel mask branch and an S x S category branch."""


class SOLOv2HeadConfig(GridHeadConfig):
    """SOLOv2: dynamic kernels predicted per cell, applied to one shared mask feature."""

    channels: int = Field(512, gt=0)
    stacked_convs: int = Field(4, ge=1)
    min_mask_pixels: int = Field(1, ge=1)
    kernel_channels: int = Field(256, gt=0, description="E: width of the mask feature")
    tower_dcn: DCN = "none"
    dcn_convs: Literal["all", "last"] = Field("all", description="towers: which convs are DCN")
    mask_feature_channels: int = Field(128, gt=0, description="per-level convs of the branch")
    mask_feature_dcn: DCN = "none"


class AggregatorConfig(ModelConfig):
    """AggMask's per-cell aggregator: dynamic convs over sampled masks and context."""

    neighbours: Literal["auto", "cross", "corners"] = Field(
        "auto",
        description="auto: the cross of 5 when any level has equal grids, else 4 corners",
    )
    context_channels: int = Field(16, ge=0)
    layers: int = Field(3, ge=1)
    kernel_size: int = Field(3, ge=1)
    hidden_channels: int = Field(4, ge=1)


class AggMaskHeadConfig(SOLOHeadConfig):
    """AggMask: the SOLO head with a mask grid and a learned per-cell aggregator.

    ``num_grids`` are the category grids; ``mask_grids`` (default: the same) size the mask
    branch. ``weight_activation`` applies to the predicted aggregator weights.
    """

    mask_grids: list[int] | None = None
    aggregator: AggregatorConfig = Field(default_factory=AggregatorConfig)
    weight_kernel: Literal[1, 3] = 3
    weight_activation: Literal["tanh", "none"] = "tanh"
    weight_init_std: float | None = Field(
        None,
        gt=0,
        description="N(0, std) init of learned_weights (None: PyTorch's default, as the "
        "reference; its aggregator outputs then start saturated)",
    )

    @model_validator(mode="after")
    def _mask_grids(self) -> AggMaskHeadConfig:
        if self.mask_grids is not None and len(self.mask_grids) != len(self.num_grids):
            raise ValueError("mask_grids needs one entry per level")
        return self


class AggMaskStarHeadConfig(AggMaskHeadConfig):
    """AggMask*: a SOLOv2-like head (1x1 dynamic kernels on a P2 mask feature) + aggregator."""

    stacked_convs: int = Field(4, ge=1)
    weight_kernel: Literal[1, 3] = 1
    weight_activation: Literal["tanh", "none"] = "none"


class _DetectorConfig(ModelConfig):
    num_classes: int = Field(80, gt=0)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    neck: NeckConfig = Field(default_factory=NeckConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    test: InferenceConfig = Field(default_factory=InferenceConfig)


class SOLOConfig(_DetectorConfig):
    """SOLO (Wang et al., ECCV 2020)."""

    head: SOLOHeadConfig = Field(default_factory=SOLOHeadConfig)


class SOLOv2Config(_DetectorConfig):
    """SOLOv2 (Wang et al., NeurIPS 2020)."""

    head: SOLOv2HeadConfig = Field(default_factory=SOLOv2HeadConfig)


class AggMaskConfig(_DetectorConfig):
    """AggMask on SOLO."""

    head: AggMaskHeadConfig = Field(default_factory=AggMaskHeadConfig)


class AggMaskStarConfig(_DetectorConfig):
    """AggMask* (the SOLOv2-like AggMask)."""

    head: AggMaskStarHeadConfig = Field(default_factory=AggMaskStarHeadConfig)


SoloFamilyConfig = SOLOConfig | SOLOv2Config | AggMaskConfig | AggMaskStarConfig
