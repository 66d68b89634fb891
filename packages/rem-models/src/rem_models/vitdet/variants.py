"""Registered ViTDet Mask R-CNN variants and their published weights.

B / L / H differ only in the ViT (width, depth, heads, global blocks, drop-path); the
pyramid and heads are shared. ``vitdet_test`` is a 0.5 M-parameter model with the layout of
the detectron2 oracle in the test data, small enough for CPU tests.
"""

from __future__ import annotations

from torch import nn

from rem_models.registry import register_model
from rem_models.vitdet.build import build_vitdet
from rem_models.vitdet.config import PyramidConfig, ROIHeadsConfig, ViTConfig, VitDetConfig
from rem_models.vitdet.convert import convert_checkpoint
from rem_models.weights import Weights

_D2 = "https://dl.fbaipublicfiles.com/detectron2"
_SOURCE = "detectron2 projects/ViTDet (Li, Mao, Girshick, He: Exploring Plain Vision Transformer Backbones for Object Detection, ECCV 2022)"
_RECIPE = (
    "{config}: COCO train2017, LSJ 1024 px (scale 0.1-2.0), batch 64, {epochs} epochs, AdamW "
    "lr 1e-4 wd 0.1, layer-wise lr decay {llrd}, drop-path {dp}, MAE ImageNet-1K init, AMP"
)


def _vit(dim: int, depth: int, heads: int, drop_path: float, global_blocks: list[int]) -> ViTConfig:
    return ViTConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        drop_path_rate=drop_path,
        window_block_indexes=[i for i in range(depth) if i not in global_blocks],
    )


def _coco(
    size: str,
    epochs: int,
    run: str,
    file: str,
    params: int,
    ap: tuple[float, float],
    llrd: float,
    drop_path: float,
) -> Weights:
    config = f"mask_rcnn_vitdet_{size}_{epochs}ep.py"
    return Weights(
        name=f"coco-{epochs}ep",
        url=f"{_D2}/ViTDet/COCO/mask_rcnn_vitdet_{size}/{run}/{file}",
        file_format="detectron2-pkl",
        num_params=params,
        metrics={"coco/box_ap": ap[0], "coco/mask_ap": ap[1]},
        recipe=_RECIPE.format(config=config, epochs=epochs, llrd=llrd, dp=drop_path),
        source=_SOURCE,
    )


def _mae(file: str, what: str) -> Weights:
    return Weights(
        name="mae-in1k",
        url=f"{_D2}/ImageNetPretrained/MAE/{file}",
        file_format="torch",
        recipe=f"MAE ImageNet-1K self-supervised pretraining, {what}; backbone only "
        "(load with rem_models.vitdet.convert; pyramid and heads keep their init)",
        source="MAE (He et al., CVPR 2022), as hosted for detectron2's ViTDet configs",
    )


def _train_defaults(
    layer_decay: float, steps: int, milestones: list[int], *, exempt_norm_and_pos: bool = True
) -> dict[str, object]:
    """detectron2's ViTDet COCO recipe as rem ``TrainConfig`` overrides."""
    return {
        "optimizer": "adamw",
        "lr": 1e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.1,
        # ViT-H decays norms and pos_embed too (its config clears both exemptions).
        "weight_decay_norm": 0.0 if exempt_norm_and_pos else None,
        "weight_decay_overrides": {"pos_embed": 0.0} if exempt_norm_and_pos else {},
        "layer_decay": layer_decay,
        "schedule": "step",
        "steps": steps,
        "milestones": milestones,
        "gamma": 0.1,
        "warmup_steps": 250,
        "warmup_factor": 0.001,
        "batch_size": 64,
        "augment.kind": "lsj",
        "augment.image_size": 1024,
        "augment.min_scale": 0.1,
        "augment.max_scale": 2.0,
    }


# 100 epochs of COCO at batch 64; the 75-epoch H schedule scales every step by 3/4 (floored).
_STEPS_100EP, _MILESTONES_100EP = 184_375, [163_889, 177_546]
TRAIN_B = _train_defaults(0.7, _STEPS_100EP, _MILESTONES_100EP)
TRAIN_L = _train_defaults(0.8, _STEPS_100EP, _MILESTONES_100EP)
TRAIN_H = _train_defaults(
    0.9,
    _STEPS_100EP * 3 // 4,
    [m * 3 // 4 for m in _MILESTONES_100EP],
    exempt_norm_and_pos=False,
)

VITDET_B = VitDetConfig(vit=_vit(768, 12, 12, 0.1, [2, 5, 8, 11]))
VITDET_L = VitDetConfig(vit=_vit(1024, 24, 16, 0.4, [5, 11, 17, 23]))
VITDET_H = VitDetConfig(vit=_vit(1280, 32, 16, 0.5, [7, 15, 23, 31]))
VITDET_TEST = VitDetConfig(
    num_classes=5,
    vit=ViTConfig(
        img_size=128,
        embed_dim=64,
        depth=4,
        num_heads=4,
        drop_path_rate=0.0,
        window_size=4,
        window_block_indexes=[0, 2],
    ),
    pyramid=PyramidConfig(out_channels=32, square_pad=128),
    roi_heads=ROIHeadsConfig(
        box_conv_dims=[32] * 4,
        box_fc_dims=[64],
        mask_conv_dims=[32] * 5,
        test_score_thresh=0.0,
    ),
)


@register_model(
    "vitdet_b",
    config=VITDET_B,
    converter=convert_checkpoint,
    train_defaults=TRAIN_B,
    weights=[
        _coco(
            "b", 100, "f325346929", "model_final_61ccd1.pkl", 110_895_792, (51.6, 45.9), 0.7, 0.1
        ),
        _mae("mae_pretrain_vit_base.pth", "ViT-B/16"),
    ],
)
def vitdet_b(config: VitDetConfig) -> nn.Module:
    """ViTDet Mask R-CNN, ViT-B/16 (COCO box/mask AP 51.6/45.9)."""
    return build_vitdet(config)


@register_model(
    "vitdet_l",
    config=VITDET_L,
    converter=convert_checkpoint,
    train_defaults=TRAIN_L,
    weights=[
        _coco(
            "l", 100, "f325599698", "model_final_6146ed.pkl", 330_684_656, (55.5, 49.2), 0.8, 0.4
        ),
        _mae("mae_pretrain_vit_large.pth", "ViT-L/16"),
    ],
)
def vitdet_l(config: VitDetConfig) -> nn.Module:
    """ViTDet Mask R-CNN, ViT-L/16 (COCO box/mask AP 55.5/49.2)."""
    return build_vitdet(config)


@register_model(
    "vitdet_h",
    config=VITDET_H,
    converter=convert_checkpoint,
    train_defaults=TRAIN_H,
    weights=[
        _coco("h", 75, "f329145471", "model_final_7224f1.pkl", 661_203_760, (56.7, 50.2), 0.9, 0.5),
        _mae(
            "mae_pretrain_vit_huge_p14to16.pth", "ViT-H/14 with the patch embedding resized to 16"
        ),
    ],
)
def vitdet_h(config: VitDetConfig) -> nn.Module:
    """ViTDet Mask R-CNN, ViT-H/16 (COCO box/mask AP 56.7/50.2)."""
    return build_vitdet(config)


@register_model(
    "vitdet_test",
    config=VITDET_TEST,
    converter=convert_checkpoint,
    train_defaults={
        "layer_decay": 0.7,
        "weight_decay_overrides": {"pos_embed": 0.0},
        "augment.image_size": 128,
        "batch_size": 2,
    },
)
def vitdet_test(config: VitDetConfig) -> nn.Module:
    """Tiny ViTDet (64-d ViT, 4 blocks, 5 classes) matching the detectron2 test oracle."""
    return build_vitdet(config)
