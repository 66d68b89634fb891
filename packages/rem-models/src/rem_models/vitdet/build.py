"""Assembling a :class:`VitDetMaskRCNN` from a :class:`VitDetConfig`."""

from __future__ import annotations

from rem_models.vitdet.anchors import AnchorGenerator
from rem_models.vitdet.box_coder import BoxCoder
from rem_models.vitdet.box_head import BoxHead, BoxPredictor
from rem_models.vitdet.config import VitDetConfig
from rem_models.vitdet.mask_head import MaskHead
from rem_models.vitdet.matcher import Matcher
from rem_models.vitdet.model import VitDetMaskRCNN
from rem_models.vitdet.pooler import MultiLevelRoIAlign
from rem_models.vitdet.roi_heads import ROIHeads
from rem_models.vitdet.rpn import RPN, RPNHead
from rem_models.vitdet.sfp import SimpleFeaturePyramid
from rem_models.vitdet.vit import ViT


def build_backbone(config: VitDetConfig) -> SimpleFeaturePyramid:
    """ViT + simple feature pyramid."""
    v = config.vit
    vit = ViT(
        img_size=v.img_size,
        patch_size=v.patch_size,
        embed_dim=v.embed_dim,
        depth=v.depth,
        num_heads=v.num_heads,
        mlp_ratio=v.mlp_ratio,
        qkv_bias=v.qkv_bias,
        drop_path_rate=v.drop_path_rate,
        norm_eps=v.norm_eps,
        use_abs_pos=v.use_abs_pos,
        use_rel_pos=v.use_rel_pos,
        window_size=v.window_size,
        window_block_indexes=v.window_block_indexes,
        pretrain_img_size=v.pretrain_img_size,
        pretrain_use_cls_token=v.pretrain_use_cls_token,
        use_act_checkpoint=v.use_act_checkpoint,
    )
    p = config.pyramid
    return SimpleFeaturePyramid(vit, p.out_channels, p.scale_factors, p.top_block, p.norm_eps)


def build_vitdet(config: VitDetConfig) -> VitDetMaskRCNN:
    """The full detector for ``config``, freshly initialised (no weights loaded)."""
    backbone = build_backbone(config)
    channels = backbone.out_channels
    level_names = sorted(backbone.strides, key=backbone.strides.__getitem__)
    # The resampled levels, fine to coarse; p6 only feeds the RPN.
    roi_names = [name for name in level_names if name in backbone.levels]

    a, r = config.anchors, config.rpn
    anchor_generator = AnchorGenerator(
        a.sizes, a.aspect_ratios, [backbone.strides[n] for n in level_names], a.offset
    )
    rpn = RPN(
        RPNHead(channels, anchor_generator.num_anchors, r.conv_dims),
        anchor_generator,
        matcher=Matcher(
            r.iou_thresholds,
            (Matcher.NEGATIVE, Matcher.IGNORE, Matcher.POSITIVE),
            r.allow_low_quality_matches,
        ),
        box_coder=BoxCoder(r.box_weights),
        batch_size_per_image=r.batch_size_per_image,
        positive_fraction=r.positive_fraction,
        pre_nms_topk=(r.pre_nms_topk_train, r.pre_nms_topk_test),
        post_nms_topk=(r.post_nms_topk_train, r.post_nms_topk_test),
        nms_thresh=r.nms_thresh,
        min_box_size=r.min_box_size,
        smooth_l1_beta=r.smooth_l1_beta,
        loss_weights={"loss_rpn_cls": r.loss_weight_cls, "loss_rpn_loc": r.loss_weight_loc},
    )

    h = config.roi_heads
    scales = [1.0 / backbone.strides[n] for n in roi_names]

    def pooler(resolution: int) -> MultiLevelRoIAlign:
        return MultiLevelRoIAlign(
            resolution, scales, h.pooler_sampling_ratio, h.canonical_box_size, h.canonical_level
        )

    box_head = BoxHead(channels, h.box_pooler_resolution, h.box_conv_dims, h.box_fc_dims)
    roi_heads = ROIHeads(
        pooler(h.box_pooler_resolution),
        box_head,
        BoxPredictor(box_head.out_features, config.num_classes),
        pooler(h.mask_pooler_resolution) if h.mask_on else None,
        MaskHead(channels, config.num_classes, h.mask_conv_dims) if h.mask_on else None,
        matcher=Matcher((h.iou_threshold,), (Matcher.NEGATIVE, Matcher.POSITIVE)),
        box_coder=BoxCoder(h.box_weights),
        batch_size_per_image=h.batch_size_per_image,
        positive_fraction=h.positive_fraction,
        proposal_append_gt=h.proposal_append_gt,
        smooth_l1_beta=h.smooth_l1_beta,
        score_thresh=h.test_score_thresh,
        nms_thresh=h.test_nms_thresh,
        detections_per_image=h.test_detections_per_image,
        loss_weights={
            "loss_cls": h.loss_weight_cls,
            "loss_box_reg": h.loss_weight_box_reg,
            "loss_mask": h.loss_weight_mask,
        },
    )
    return VitDetMaskRCNN(
        backbone,
        rpn,
        roi_heads,
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
        square_pad=config.pyramid.square_pad,
        size_divisibility=config.pyramid.size_divisibility,
        rpn_features=level_names,
        roi_features=roi_names,
        mask_threshold=h.mask_threshold,
    )
