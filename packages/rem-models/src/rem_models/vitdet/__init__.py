"""ViTDet Mask R-CNN in plain PyTorch, loading and reproducing detectron2's checkpoints.

Registered as ``vitdet_b`` / ``vitdet_l`` / ``vitdet_h`` (and the tiny ``vitdet_test``) in
:mod:`rem_models.registry`; :mod:`rem_models.vitdet.convert` maps detectron2 and MAE weights.
"""

from rem_models.vitdet.build import build_backbone, build_vitdet
from rem_models.vitdet.config import (
    AnchorConfig,
    PyramidConfig,
    ROIHeadsConfig,
    RPNConfig,
    ViTConfig,
    VitDetConfig,
)
from rem_models.vitdet.convert import (
    ConvertedWeights,
    convert_detectron2_state_dict,
    convert_mae_state_dict,
    convert_state_dict,
    load_checkpoint_file,
    load_into,
)
from rem_models.vitdet.model import VitDetMaskRCNN

__all__ = [
    "AnchorConfig",
    "ConvertedWeights",
    "PyramidConfig",
    "ROIHeadsConfig",
    "RPNConfig",
    "ViTConfig",
    "VitDetConfig",
    "VitDetMaskRCNN",
    "build_backbone",
    "build_vitdet",
    "convert_detectron2_state_dict",
    "convert_mae_state_dict",
    "convert_state_dict",
    "load_checkpoint_file",
    "load_into",
]
