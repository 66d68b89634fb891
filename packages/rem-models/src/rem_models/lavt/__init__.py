"""LAVT referring segmentation in plain PyTorch, loading and reproducing LAVT's checkpoints.

Registered as ``lavt`` / ``lavt_one`` (and the tiny ``lavt_test``) in
:mod:`rem_models.registry`. :mod:`~rem_models.lavt.convert` reads LAVT's files,
:mod:`~rem_models.lavt.training` holds the recipe, :mod:`~rem_models.lavt.predict` writes
referring predictions for ``rem eval-referring``.
"""

from rem_models.lavt.build import build_lavt
from rem_models.lavt.config import LavtConfig, SwinConfig, TextConfig
from rem_models.lavt.convert import convert_lavt_state_dict, infer_config, read_lavt_file
from rem_models.lavt.model import LAVT
from rem_models.lavt.text import LavtTokenizer, build_tokenizer
from rem_models.lavt.training import LavtTrainConfig, lavt_loss, train_lavt

__all__ = [
    "LAVT",
    "LavtConfig",
    "LavtTokenizer",
    "LavtTrainConfig",
    "SwinConfig",
    "TextConfig",
    "build_lavt",
    "build_tokenizer",
    "convert_lavt_state_dict",
    "infer_config",
    "lavt_loss",
    "read_lavt_file",
    "train_lavt",
]
