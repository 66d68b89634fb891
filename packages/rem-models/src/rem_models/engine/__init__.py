"""The train / predict engine shared by every rem-models family.

Datasets from COCO-style files (:mod:`.dataset`), LSJ augmentation (:mod:`.augment`), a
deterministic global-batch sampler (:mod:`.sampler`), layer-decay parameter groups
(:mod:`.param_groups`), warmup + step/cosine schedules (:mod:`.schedule`), the training loop with
snapshots and resume (:mod:`.trainer`), prediction to COCO results (:mod:`.inference`) and
evaluation (:mod:`.evaluation`). Importing this package imports torch.
"""

from rem_models.engine.categories import CategoryMap
from rem_models.engine.config import AugmentConfig, TrainConfig
from rem_models.engine.dataset import CocoInstances, ImageFiles, read_image
from rem_models.engine.evaluation import Evaluator, evaluate_results
from rem_models.engine.inference import predict_dataset, to_coco_results
from rem_models.engine.param_groups import build_optimizer, build_param_groups, vit_layer_id
from rem_models.engine.schedule import build_scheduler, lr_multiplier
from rem_models.engine.trainer import Trainer, TrainResult

__all__ = [
    "AugmentConfig",
    "CategoryMap",
    "CocoInstances",
    "Evaluator",
    "ImageFiles",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "build_param_groups",
    "build_scheduler",
    "evaluate_results",
    "lr_multiplier",
    "predict_dataset",
    "read_image",
    "to_coco_results",
    "vit_layer_id",
]
