"""The SOLO family's training recipes, input scales and weights records, as data.

Shared by the variant modules (:mod:`rem_models.solo.variants` and the modules it imports).
Recipes are rem ``TrainConfig`` overrides: SGD lr 0.01, momentum 0.9, weight decay 1e-4 on
every parameter, batch 16, gradient clipping at 35, 500 linear warmup steps, steps x0.1 at the
listed epochs; the model rescales its inputs itself, so the engine only flips.
"""

from __future__ import annotations

from rem_models.solo.config import BackboneConfig, InputConfig
from rem_models.weights import Weights

# ceil(117,266 COCO train2017 images with annotations / 16 images per step).
STEPS_PER_EPOCH = 7330

SINGLE_SCALE = [(1333, 800)]
MULTI_SCALE = [(1333, s) for s in (800, 768, 736, 704, 672, 640)]
LIGHT_SHORT = (512, 480, 448, 416, 384, 352)

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


def solo_weights(name: str, link: str, params: int, ap: float, config: str, multi: bool) -> Weights:
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


def imagenet_weights(file: str, arch: str) -> Weights:
    return Weights(
        name="imagenet-backbone",
        url=f"https://download.pytorch.org/models/{file}",
        file_format="torch",
        recipe=f"torchvision ImageNet-1K {arch} classifier; backbone only: `rem "
        "convert-checkpoint` places it in a freshly initialised model (seed 0), the "
        "reference's start",
        source="torchvision",
    )


IMAGENET_R50 = imagenet_weights("resnet50-0676ba61.pth", "ResNet-50")
IMAGENET_R101 = imagenet_weights("resnet101-63fe2227.pth", "ResNet-101")


def backbone(depth: int, *, dcn: str = "none", **kw: object) -> BackboneConfig:
    stages = [False, True, True, True] if dcn != "none" else [False] * 4
    return BackboneConfig(depth=depth, dcn=dcn, stage_with_dcn=stages, **kw)  # type: ignore[arg-type]


def inputs(scales: list[tuple[int, int]], test: tuple[int, int] = (1333, 800)) -> InputConfig:
    return InputConfig(test_scale=test, train_scales=scales)
