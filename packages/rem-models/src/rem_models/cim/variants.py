"""Registered CIM variants. No weights are published for CIM."""

from __future__ import annotations

from rem_models.cim.backbone import build_backbone
from rem_models.cim.config import CimConfig
from rem_models.cim.heads import MaskFuseHead, MilHead, RefinementHeads
from rem_models.cim.model import CimModel
from rem_models.cim.prm import prm_r50, prm_test  # noqa: F401 (registers the PRM variants)
from rem_models.registry import register_model


def _build(config: CimConfig) -> CimModel:
    backbone = build_backbone(config)
    head = MaskFuseHead(backbone.channels, backbone.stride, config.hidden_dim, config.roi_size)
    return CimModel(
        backbone,
        head,
        MilHead(config.hidden_dim, config.num_classes),
        RefinementHeads(config.hidden_dim, config.num_classes, config.num_refinements),
    )


@register_model("cim_r50", config=CimConfig())
def cim_r50(config: CimConfig) -> CimModel:
    """CIM with a ResNet-50 (res4) backbone, VOC's 20 classes by default."""
    return _build(config)


@register_model("cim_vgg16", config=CimConfig(backbone="vgg16"))
def cim_vgg16(config: CimConfig) -> CimModel:
    """CIM with a VGG16 backbone (dilated conv5, stride 8)."""
    return _build(config)


@register_model("cim_hrnet48", config=CimConfig(backbone="hrnet"))
def cim_hrnet48(config: CimConfig) -> CimModel:
    """CIM with an HRNet-W48-C backbone (stride 32, 2048 channels; needs timm, the hrnet extra)."""
    return _build(config)


@register_model(
    "cim_test", config=CimConfig(backbone="tiny", tiny_width=16, num_classes=3, hidden_dim=64)
)
def cim_test(config: CimConfig) -> CimModel:
    """Tiny CIM for CPU tests (three-conv backbone, 64-wide head)."""
    return _build(config)
