"""Typed configuration of ViTDet Mask R-CNN; defaults are the ViT-B COCO model.

Every field mirrors a value of detectron2's ``projects/ViTDet/configs/COCO`` LazyConfigs,
so ``vitdet_b`` / ``vitdet_l`` / ``vitdet_h`` differ only in :class:`ViTConfig`.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from rem_models.registry import ModelConfig


class ViTConfig(ModelConfig):
    """The plain ViT backbone."""

    img_size: int = Field(1024, gt=0, description="input size; sizes the global rel-pos tables")
    patch_size: int = Field(16, gt=0)
    embed_dim: int = Field(768, gt=0)
    depth: int = Field(12, gt=0)
    num_heads: int = Field(12, gt=0)
    mlp_ratio: float = Field(4.0, gt=0)
    qkv_bias: bool = True
    drop_path_rate: float = Field(0.1, ge=0, lt=1)
    window_size: int = Field(14, ge=0)
    window_block_indexes: list[int] = Field(default_factory=lambda: [0, 1, 3, 4, 6, 7, 9, 10])
    use_abs_pos: bool = True
    use_rel_pos: bool = True
    pretrain_img_size: int = Field(224, gt=0, description="grid of the stored pos_embed")
    pretrain_use_cls_token: bool = True
    norm_eps: float = Field(1e-6, gt=0)
    use_act_checkpoint: bool = Field(False, description="recompute blocks in backward")

    @model_validator(mode="after")
    def _check(self) -> ViTConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        bad = [i for i in self.window_block_indexes if not 0 <= i < self.depth]
        if bad:
            raise ValueError(f"window_block_indexes {bad} outside 0..{self.depth - 1}")
        return self


class PyramidConfig(ModelConfig):
    """The simple feature pyramid and input padding."""

    out_channels: int = Field(256, gt=0)
    scale_factors: list[float] = Field(default_factory=lambda: [4.0, 2.0, 1.0, 0.5])
    top_block: bool = Field(True, description="add p6 by subsampling p5")
    square_pad: int = Field(1024, ge=0, description="pad inputs to this square (0: no)")
    size_divisibility: int = Field(32, gt=0, description="padding multiple when square_pad=0")
    norm_eps: float = Field(1e-6, gt=0)


class AnchorConfig(ModelConfig):
    """RPN anchors: one size per pyramid level (p2..p6), every aspect ratio (h / w)."""

    sizes: list[float] = Field(default_factory=lambda: [32.0, 64.0, 128.0, 256.0, 512.0])
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    offset: float = Field(0.0, ge=0, lt=1)


class RPNConfig(ModelConfig):
    """Region proposal network."""

    conv_dims: list[int] = Field(default_factory=lambda: [-1, -1])
    iou_thresholds: tuple[float, float] = (0.3, 0.7)
    allow_low_quality_matches: bool = True
    batch_size_per_image: int = Field(256, gt=0)
    positive_fraction: float = Field(0.5, gt=0, le=1)
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    pre_nms_topk_train: int = Field(2000, gt=0)
    pre_nms_topk_test: int = Field(1000, gt=0)
    post_nms_topk_train: int = Field(1000, gt=0)
    post_nms_topk_test: int = Field(1000, gt=0)
    nms_thresh: float = Field(0.7, gt=0, le=1)
    min_box_size: float = Field(0.0, ge=0)
    smooth_l1_beta: float = Field(0.0, ge=0)
    loss_weight_cls: float = 1.0
    loss_weight_loc: float = 1.0


class ROIHeadsConfig(ModelConfig):
    """Box and mask branches."""

    batch_size_per_image: int = Field(512, gt=0)
    positive_fraction: float = Field(0.25, gt=0, le=1)
    iou_threshold: float = Field(0.5, gt=0, le=1)
    proposal_append_gt: bool = True
    pooler_sampling_ratio: int = Field(0, ge=0)
    canonical_box_size: float = Field(224.0, gt=0)
    canonical_level: int = 4
    box_pooler_resolution: int = Field(7, gt=0)
    box_conv_dims: list[int] = Field(default_factory=lambda: [256, 256, 256, 256])
    box_fc_dims: list[int] = Field(default_factory=lambda: [1024])
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_beta: float = Field(0.0, ge=0)
    mask_on: bool = True
    mask_pooler_resolution: int = Field(14, gt=0)
    mask_conv_dims: list[int] = Field(
        default_factory=lambda: [256, 256, 256, 256, 256],
        description="3x3 conv widths, then the transposed conv's width",
    )
    test_score_thresh: float = Field(0.05, ge=0, le=1)
    test_nms_thresh: float = Field(0.5, gt=0, le=1)
    test_detections_per_image: int = 100
    mask_threshold: float = Field(0.5, ge=0, le=1)
    loss_weight_cls: float = 1.0
    loss_weight_box_reg: float = 1.0
    loss_weight_mask: float = 1.0


class VitDetConfig(ModelConfig):
    """ViTDet Mask R-CNN; ``num_classes`` excludes background (COCO: 80)."""

    num_classes: int = Field(80, gt=0)
    vit: ViTConfig = Field(default_factory=ViTConfig)
    pyramid: PyramidConfig = Field(default_factory=PyramidConfig)
    anchors: AnchorConfig = Field(default_factory=AnchorConfig)
    rpn: RPNConfig = Field(default_factory=RPNConfig)
    roi_heads: ROIHeadsConfig = Field(default_factory=ROIHeadsConfig)
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    @model_validator(mode="after")
    def _check(self) -> VitDetConfig:
        levels = len(self.pyramid.scale_factors) + int(self.pyramid.top_block)
        if len(self.anchors.sizes) != levels:
            raise ValueError(f"{len(self.anchors.sizes)} anchor sizes for {levels} pyramid levels")
        if min(self.pixel_std) <= 0:
            raise ValueError("pixel_std must be positive")
        return self
