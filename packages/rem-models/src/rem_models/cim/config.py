"""Typed hyperparameters of a CIM model (the registry's config for the ``cim_*`` variants)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rem_models.registry import ModelConfig


class CimConfig(ModelConfig):
    """CIM: backbone, MaskFuse head width and the number of foreground classes.

    ``backbone``: ``resnet50`` (res1-res4, stride 16, 1024 channels), ``vgg16`` (conv5 dilated,
    stride 8, 512 channels), ``hrnet`` (HRNet-W``hrnet_width``-C with its classification head's
    feature layers, stride 32, 2048 channels; needs timm) or ``tiny`` (three strided convs, for
    CPU tests). ``hrnet_freeze_at``: CIM's ``HRNET.FREEZE_AT`` (1 = stem + layer1, 2 = also
    transition1 + stage2, trained with no gradient).
    """

    backbone: Literal["resnet50", "vgg16", "hrnet", "tiny"] = "resnet50"
    hrnet_width: int = Field(48, gt=0)
    hrnet_freeze_at: int = Field(2, ge=0, le=2)
    tiny_width: int = Field(32, gt=0)
    num_classes: int = Field(20, gt=0)
    hidden_dim: int = Field(4096, gt=0)  # the two fc layers of the MaskFuse head
    roi_size: int = Field(7, gt=0)
    num_refinements: int = Field(3, ge=1)
